"""Do synthetic samples make a classifier better? Four regimes of digits, paired seeds.

    python benchmarks/usefulness.py [--regimes a5,a10,b,c,d] [--seeds 5] [--model dcgan]
                                    [--gen-steps 3000] [--jobs 2] [--work DIR]

digits:train is split once into a validation set (15% of each class, seed 1000) and a pool;
every choice below (the dose, the weight, filtering, soft labels) is compared on the
validation set, and digits:test (which neither the generators nor the choices saw) is reported.
Per seed, the pool gives the training data of each regime:

- ``a5``/``a10``: 5 or 10 labelled images per class; the rest of the pool is unlabelled and goes
  to ``fit(..., unlabeled=...)`` (with fit's default pseudo-labels);
- ``b``: long-tailed: classes 0-4 whole, classes 5-9 cut to 10%;
- ``c``: 10% of each class; ``d``: the whole pool.

The generator is fitted with the defaults of ``synthaug.fit`` (``--model``, ``--gen-steps``) on
the regime's labelled images. Every arm trains the same SmallCNN for the same optimiser steps
(400, batch 64) from the same seed (same initial weights, same classical random-affine
augmentation stream), so arms of one seed are paired; the arms:

- ``real``: real images only (the baseline a practitioner already has);
- ``recipe``: ``SyntheticDataset(real, sampler)`` with its defaults (``balance=True`` in ``b``:
  the README's two-line recipe), plus ``ratio_R`` variants;
- ``weight_W``: the recipe with synthetic rows' loss weighted by ``synthaug.synthetic_weight``;
- ``soft_S``: the recipe with label smoothing ``S`` on synthetic rows only;
- ``filter``: the recipe through a ``FilteredSampler`` judged by the ``real`` arm's classifier;
- ``pseudo`` (a only): the alternative without a generator: real images plus the pool images
  the labelling classifier of ``fit --pseudo-labels`` is confident about; ``pseudo_recipe``:
  both together.

Each (regime, seed) is one task; its result is written to ``--work`` as it finishes (a rerun
skips finished tasks). The summary — means with 95% t intervals and paired gains over the real
arm, accuracy, balanced accuracy and the rare classes' accuracy in ``b`` — goes to
benchmarks/results/usefulness_<model>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
REGIMES = ("a5", "a10", "b", "c", "d")
VAL_FRACTION, VAL_SEED = 0.15, 1000
RARE = (5, 6, 7, 8, 9)
STEPS, BATCH = 400, 64


def split(regime: str, seed: int):
    """``(labelled ImageData, unlabelled ImageData or None, validation ImageData)``."""
    import torch

    from synthaug.data import load_data, per_class_subset, stratified_split

    train = load_data("digits:train")
    pool_idx, val_idx = stratified_split(train.labels, VAL_FRACTION, VAL_SEED)
    pool, val = train.subset(pool_idx), train.subset(val_idx)
    sizes = pool.class_counts()
    if regime.startswith("a"):
        labelled = per_class_subset(pool.labels, [int(regime[1:])] * len(sizes), seed)
        rest = torch.ones(len(pool), dtype=torch.bool)
        rest[labelled] = False
        return pool.subset(labelled), pool.subset(rest.nonzero().flatten()), val
    if regime == "b":
        counts = [max(1, round(0.1 * n)) if c in RARE else n for c, n in enumerate(sizes)]
        return pool.subset(per_class_subset(pool.labels, counts, seed)), None, val
    if regime == "c":
        return pool.subset(stratified_split(pool.labels, 0.1, seed)[1]), None, val
    if regime == "d":
        return pool, None, val
    raise SystemExit(f"usefulness: expected regimes among {', '.join(REGIMES)}, got {regime!r}")


def stream(items, seed: int):
    """Endless batches of ``BATCH`` items from reshuffled passes; ``items(epoch)`` gives the
    epoch's ``(images float, labels, is_synthetic)``."""
    import torch

    order = torch.Generator().manual_seed(seed)
    epoch, pending, data = 0, torch.empty(0, dtype=torch.int64), items(0)
    while True:
        while len(pending) < min(BATCH, len(data[0])):
            if epoch > 0:  # a fresh pass: the dataset's next epoch (new synthetic images)
                data = items(epoch)
            pending = torch.cat([pending, torch.randperm(len(data[0]), generator=order)])
            epoch += 1
        idx, pending = pending[:BATCH], pending[BATCH:]
        yield data[0][idx], data[1][idx], data[2][idx]


def train_arm(items, seed: int, weight: float = 1.0, smoothing: float = 0.0):
    """SmallCNN, ``STEPS`` AdamW steps with one-cycle, classical augmentation on every batch."""
    import torch
    import torch.nn.functional as F

    import synthaug
    from synthaug.metrics.views import ClassicalAugment
    from synthaug.metrics.classifier import SmallCNN

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SmallCNN(1, 10)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=STEPS + 1)
    augment = ClassicalAugment(seed=seed)
    batches = stream(items, seed)
    model.train()
    for _ in range(STEPS):
        x, y, synthetic = next(batches)
        x, y = augment(x, y)
        logits = model(x)
        losses = F.cross_entropy(logits, y, reduction="none")
        if smoothing:  # label smoothing on the synthetic rows only
            smoothed = F.cross_entropy(logits, y, reduction="none", label_smoothing=smoothing)
            losses = torch.where(synthetic, smoothed, losses)
        loss = (losses * synthaug.synthetic_weight(synthetic, weight)).mean() if weight != 1.0 else losses.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


def scores(model, data) -> dict:
    from synthaug.metrics.classifier import balanced_accuracy, per_class_accuracy, predict

    preds = predict(model, data.as_float())
    per_class = per_class_accuracy(preds, data.labels, data.num_classes)
    return {"accuracy": (preds == data.labels).float().mean().item(),
            "balanced_accuracy": balanced_accuracy(preds, data.labels, data.num_classes),
            "rare_accuracy": sum(per_class[c] for c in RARE) / len(RARE), "per_class": per_class}


def real_items(data):
    import torch

    x, y = data.as_float(), data.labels
    return lambda epoch: (x, y, torch.zeros(len(y), dtype=torch.bool))


def mixed_items(real, generator, seed: int, **dose):
    """The epochs of ``SyntheticDataset(real, generator, **dose)`` as float tensors (its items
    are in real's own format: uint8 arrays scaled by pixel_max)."""
    import numpy as np
    import torch

    from synthaug import SyntheticDataset

    ds = SyntheticDataset(real, generator, seed=seed, return_is_synthetic=True, **dose)

    def items(epoch: int):
        ds.set_epoch(epoch)
        rows = [ds[i] for i in range(len(ds))]
        x = torch.from_numpy(np.stack([r[0] for r in rows])).float().unsqueeze(1) / real.pixel_max
        return x, torch.tensor([int(r[1]) for r in rows]), torch.tensor([bool(r[2]) for r in rows])

    return items, ds


def run_task(regime: str, seed: int, args) -> dict:
    import torch

    import synthaug
    from synthaug.augment.dataset import DEFAULT_RATIO
    from synthaug.data import load_data
    from synthaug.runtime.filtered import FilteredSampler
    from synthaug.train.pseudo_labels import DEFAULT_THRESHOLD, pseudo_label

    torch.set_num_threads(1)
    labelled, pool, val = split(regime, seed)
    test = load_data("digits:test")
    t0 = time.perf_counter()
    run = synthaug.fit(labelled, out=args.work / f"run_{args.model}_{regime}_{seed}", model=args.model,
                       steps=args.gen_steps, seed=seed, force=True, progress=False, unlabeled=pool)
    fit_seconds = time.perf_counter() - t0
    sampler = run.sampler()
    recipe = {"balance": True} if regime == "b" else {"ratio": DEFAULT_RATIO}
    arms = {"real": real_items(labelled)}
    arms["recipe"], _ = mixed_items(labelled, sampler, seed, **recipe)
    for ratio in args.ratios:
        arms[f"ratio_{ratio:g}"], _ = mixed_items(labelled, sampler, seed, ratio=ratio)
    models = {name: train_arm(items, seed) for name, items in arms.items()}
    for w in args.weights:
        models[f"weight_{w:g}"] = train_arm(arms["recipe"], seed, weight=w)
    for s in args.smoothing:
        models[f"soft_{s:g}"] = train_arm(arms["recipe"], seed, smoothing=s)
    judge = FilteredSampler(sampler, lambda x: torch.softmax(models["real"](x), 1), max_rounds=5)
    filtered, _ = mixed_items(labelled, judge, seed, **recipe)
    models["filter"] = train_arm(filtered, seed)
    extra = {"fit_seconds": round(fit_seconds, 1), "filter_acceptance": judge.acceptance_rate}
    if regime == "b":
        extra["cas_per_class"] = cas_per_class(sampler, seed)
    if pool is not None:
        from synthaug.data.unlabeled import load_unlabeled

        unl = load_unlabeled(pool, labelled.image_shape)
        found = pseudo_label(labelled, unl, DEFAULT_THRESHOLD, seed)
        pl = labelled.subset(torch.arange(len(labelled)))
        pl.images = torch.cat([labelled.images, unl.images[found.indices]])
        pl.labels = torch.cat([labelled.labels, found.labels])
        models["pseudo"] = train_arm(real_items(pl), seed)
        models["pseudo_recipe"] = train_arm(mixed_items(pl, sampler, seed, **recipe)[0], seed)
        extra["pseudo_labelled"] = len(found.indices)
        extra["pseudo_label_accuracy"] = float((found.labels == pool.labels[found.indices]).float().mean())
    out = {"regime": regime, "seed": seed, "model": args.model, "labelled": len(labelled),
           "unlabelled": len(pool) if pool is not None else 0, "card_pseudo_labels": run.card.training.get(
               "pseudo_labels", {}).get("labelled"), **extra,
           "arms": {name: {"val": scores(m, val), "test": scores(m, test)} for name, m in models.items()}}
    return out


def _write_json(path: Path, result: dict) -> None:
    """A task's result, whole or not at all (a killed run leaves no half file to skip over)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, path)


def cas_per_class(sampler, seed: int, per_class: int = 130) -> list[float]:
    """Per-class test accuracy of a SmallCNN trained on generated images only (CAS by class): in
    the long tail, whether the rare classes' samples are as usable as the common ones' — i.e.
    whether the generator shares what it learns from the common classes."""
    from synthaug.data import load_data
    from synthaug.metrics.classifier import fit_steps, per_class_accuracy, predict

    test = load_data("digits:test")
    images, labels = sampler.sample_per_class(per_class, seed=seed)
    model = fit_steps(images, labels, test.num_classes, STEPS, seed=seed)
    return per_class_accuracy(predict(model, test.as_float()), test.labels, test.num_classes)


def _task(job):
    regime, seed, args = job
    path = args.work / f"{args.model}_{regime}_{seed}.json"
    if path.exists():
        result = json.loads(path.read_text())
        if regime == "b" and "cas_per_class" not in result:  # a result from before it was measured
            import synthaug

            sampler = synthaug.load(args.work / f"run_{args.model}_{regime}_{seed}")
            result["cas_per_class"] = cas_per_class(sampler, seed)
            _write_json(path, result)
        return result
    t0 = time.perf_counter()
    result = run_task(regime, seed, args)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    _write_json(path, result)
    print(json.dumps({"regime": regime, "seed": seed, "seconds": result["seconds"],
                      "real": round(result["arms"]["real"]["test"]["balanced_accuracy"], 4),
                      "recipe": round(result["arms"]["recipe"]["test"]["balanced_accuracy"], 4)}),
          file=sys.stderr, flush=True)
    return result


def summarise(results: list[dict]) -> dict:
    from synthaug.evaluation.gain import mean_interval as interval

    out = {}
    for regime in dict.fromkeys(r["regime"] for r in results):
        rows = sorted((r for r in results if r["regime"] == regime), key=lambda r: r["seed"])
        arms = {}
        for name in rows[0]["arms"]:
            arm = {}
            for split_name in ("val", "test"):
                for metric in ("accuracy", "balanced_accuracy", "rare_accuracy"):
                    vals = [r["arms"][name][split_name][metric] for r in rows]
                    base = [r["arms"]["real"][split_name][metric] for r in rows]
                    arm[f"{split_name}_{metric}"] = interval(vals)
                    if name != "real":
                        arm[f"{split_name}_{metric}_gain"] = interval([v - b for v, b in zip(vals, base)])
            arms[name] = arm
        chosen = max((n for n in arms if n not in ("real", "pseudo")),
                     key=lambda n: arms[n]["val_balanced_accuracy"]["mean"])
        out[regime] = {"seeds": [r["seed"] for r in rows], "labelled": rows[0]["labelled"],
                       "unlabelled": rows[0]["unlabelled"], "chosen_on_val": chosen,
                       "fit_seconds": interval([r["fit_seconds"] for r in rows]),
                       **({"pseudo_label_accuracy": interval([r["pseudo_label_accuracy"] for r in rows]),
                           "pseudo_labelled": interval([r["pseudo_labelled"] for r in rows])}
                          if "pseudo_labelled" in rows[0] else {}),
                       **({"cas_rare": interval([sum(r["cas_per_class"][c] for c in RARE) / len(RARE) for r in rows]),
                           "cas_common": interval([sum(r["cas_per_class"][c] for c in range(10) if c not in RARE)
                                                   / (10 - len(RARE)) for r in rows])}
                          if "cas_per_class" in rows[0] else {}),
                       "arms": arms}
    return out


def _pts(iv: dict) -> str:
    return f"{100 * iv['mean']:+.1f} [{100 * iv['low']:+.1f}, {100 * iv['high']:+.1f}]"


def markdown(summary: dict, model: str) -> str:
    names = {"a5": "(a) 5 labels/class + unlabelled pool", "a10": "(a) 10 labels/class + unlabelled pool",
             "b": "(b) long tail: classes 5-9 at 10%", "c": "(c) 10%, balanced", "d": "(d) all of the pool"}
    lines = [f"Generator: `{model}` (fit defaults). Test: digits:test. Gains are paired (same seed), in points, "
             "with 95% intervals; `chosen on val.` is the arm with the best validation balanced accuracy.", "",
             "| regime | labelled | real + classical aug. (bal. acc.) | recipe gain (bal. acc.) | recipe gain (acc.) "
             "| rare classes gain | pseudo-labels only gain | chosen on val. | its test gain |",
             "|---|---|---|---|---|---|---|---|---|"]
    for regime, s in summary.items():
        a = s["arms"]
        base = a["real"]["test_balanced_accuracy"]
        rare = _pts(a["recipe"]["test_rare_accuracy_gain"]) if regime == "b" else "–"
        pseudo = _pts(a["pseudo"]["test_balanced_accuracy_gain"]) if "pseudo" in a else "–"
        chosen = s["chosen_on_val"]
        lines.append(f"| {names.get(regime, regime)} | {s['labelled']} | {100 * base['mean']:.1f}% ± "
                     f"{100 * base['ci95']:.1f} | **{_pts(a['recipe']['test_balanced_accuracy_gain'])}** | "
                     f"{_pts(a['recipe']['test_accuracy_gain'])} | {rare} | {pseudo} | `{chosen}` | "
                     f"{_pts(a[chosen]['test_balanced_accuracy_gain'])} |")
    if "b" in summary and "cas_rare" in summary["b"]:
        b = summary["b"]
        lines += ["", f"Sharing across classes in (b): a classifier trained on generated images only (130 per "
                      f"class) reaches {100 * b['cas_rare']['mean']:.1f}% ± {100 * b['cas_rare']['ci95']:.1f} on the "
                      f"rare classes, whose generator saw ~13 images each, and {100 * b['cas_common']['mean']:.1f}% "
                      f"± {100 * b['cas_common']['ci95']:.1f} on the common ones (~115 each)."]
    lines += ["", "Every arm, balanced-accuracy gain over `real` (test; validation in parentheses):", "",
              "| arm | " + " | ".join(summary) + " |", "|---|" + "---|" * len(summary)]
    arm_names = list(dict.fromkeys(n for s in summary.values() for n in s["arms"] if n != "real"))
    for name in arm_names:
        cells = []
        for s in summary.values():
            a = s["arms"].get(name)
            cells.append("–" if a is None else f"{_pts(a['test_balanced_accuracy_gain'])} "
                                              f"({100 * a['val_balanced_accuracy_gain']['mean']:+.1f})")
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--regimes", default=",".join(REGIMES))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--model", default="dcgan")
    parser.add_argument("--gen-steps", type=int, default=None, help="generator steps (default: fit's)")
    parser.add_argument("--ratios", default="0.5,2", help="dose variants of SyntheticDataset's ratio")
    parser.add_argument("--weights", default="0.5,0.3", help="synthetic loss weights to compare")
    parser.add_argument("--smoothing", default="0.1", help="label smoothing on synthetic rows to compare")
    parser.add_argument("--jobs", type=int, default=2, help="tasks in parallel, one thread each")
    parser.add_argument("--work", type=Path, default=Path("runs/usefulness"),
                        help="run directories and per-task results (not committed)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.ratios = [float(v) for v in args.ratios.split(",") if v]
    args.weights = [float(v) for v in args.weights.split(",") if v]
    args.smoothing = [float(v) for v in args.smoothing.split(",") if v]
    args.work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # one thread per task: parallel tasks, no oversubscription
    jobs = [(regime, seed, args) for regime in args.regimes.split(",") for seed in range(args.seeds)]
    if args.jobs > 1:
        with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
            results = pool.map(_task, jobs, chunksize=1)
    else:
        results = [_task(job) for job in jobs]
    summary = summarise(results)
    name = f"usefulness_{args.model}"
    doc = {"benchmark": "usefulness", "command": " ".join(["python", "benchmarks/usefulness.py", *sys.argv[1:]]),
           "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
           "classifier": {"network": "SmallCNN", "steps": STEPS, "batch_size": BATCH, "augment": "random affine"},
           "validation": {"fraction": VAL_FRACTION, "seed": VAL_SEED}, "regimes": summary}
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"{name}.json").write_text(json.dumps(doc, indent=2) + "\n")
    (args.results / f"{name}.md").write_text(markdown(summary, args.model))
    print(markdown(summary, args.model))


if __name__ == "__main__":
    main()
