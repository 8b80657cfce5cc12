"""Can the generator earn its place on the rare classes? Generator variants for a long tail,
judged by the rare classes' CAS and by synthetic rows on top of the rebalancing baselines.

    python benchmarks/rare_classes.py [--datasets digits,mnist5k] [--regimes b5] [--seeds 3]
                                      [--class-balance 0.5,1] [--jobs 2] [--work runs/usefulness]

Runs after ``benchmarks/usefulness.py`` on the same ``--work`` folder: the same datasets, splits,
seeds, generator steps and classifier (the SmallCNN, 400 steps, batch 64, random affine, through
``synthaug.metrics.methods.train_method``), so every arm here is paired by seed with the
baselines (``resample``, ``logit_adjust``) that usefulness.py measured and saved per task.

Generator variants, per (dataset, regime, seed):

- ``default``: the recipe's generator (fit's defaults: batches in the data's class mix, so a rare
  class of 5 images among classes of ~300 gets ~0.3% of the class-term updates);
- ``cb<B>``: the same fit with ``class_balance=B`` (:func:`synthaug.fit`; 1 gives every class the
  same share of the batches);
- ``<variant>+filter`` (``--filter``, default ``default,cb1``): that generator, each synthetic
  row the best of 4 candidates by a classifier trained with class-balanced resampling on the
  labelled images (the ``resample`` baseline's model): the candidate it gives the highest
  probability of the asked class.

Per variant: the CAS of the rare classes (a classifier trained on synthetic rows only, in
balanced classes, scored on the real test images of the rare classes) and each baseline
``+synthetic@D``. The variant and dose are chosen on validation; the targets read the paired
test differences against the best baseline. Results: benchmarks/results/rare_classes.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import usefulness as u  # noqa: E402  (the datasets, splits, scoring and recipe of the main benchmark)

CANDIDATES = 4


def filtered(sampler, judge, candidates: int = CANDIDATES):
    """``sampler`` whose every image is the best of ``candidates`` by ``judge`` (a classifier):
    the one with the highest probability of its asked class."""
    import torch

    from synthaug.runtime.sampler import Sampler

    class Filtered(Sampler):
        def __init__(self) -> None:
            self.card, self.device = sampler.card, sampler.device

        def _generate(self, noise, labels):  # unused: sample_on_device is the path SyntheticMix takes
            raise NotImplementedError

        def sample_on_device(self, labels, generator):
            if len(labels) == 0:
                return sampler.sample_on_device(labels, generator)
            images = sampler.sample_on_device(labels.repeat(candidates), generator)
            with torch.no_grad():
                p = torch.softmax(judge(images), dim=1)
            score = p.gather(1, labels.repeat(candidates)[:, None]).view(candidates, len(labels))
            best = score.argmax(dim=0)
            return images.view(candidates, len(labels), *images.shape[1:])[best, torch.arange(len(labels))]

    return Filtered()


def generator_variant(labelled, name: str, regime: str, seed: int, balance: float, args):
    """A sampler of the recipe's fit with ``class_balance=balance`` (fitted once into --work)."""
    import synthaug

    out = args.work / "class_balance" / f"{args.model}_{name}_{regime}_{seed}_cb{balance:g}"
    done = (out / "card.json").is_file() and synthaug.Run(out).card.training.get("steps") == \
        args.gen_steps.get(name, 3000)
    if not done:
        synthaug.fit(labelled, out=out, model=args.model, steps=args.gen_steps.get(name), seed=seed,
                     class_balance=balance, progress=False, force=out.exists())
    return synthaug.Run(out).sampler()


def run_task(name: str, regime: str, seed: int, args, done: dict) -> dict:
    """The arms of one (dataset, regime, seed); variants already in ``done["arms"]`` are kept."""
    import torch

    from synthaug.augment.mix import SyntheticMix
    from synthaug.metrics.methods import Method, train_method

    torch.set_num_threads(1)
    pool, val, test = u.dataset(name, args.work)
    labelled, unlabelled = u.split(pool, regime, seed)
    rare = u.rare_classes(pool.num_classes)
    x, y, k = labelled.as_float(), labelled.labels, labelled.num_classes
    arms = dict(done.get("arms", {}))
    missing = [v for v in _variants(args) if f"{v}:cas" not in arms]
    if not missing:
        return done
    judge = train_method(x, y, k, Method(sampling="balanced"), steps=u.STEPS, seed=seed, batch_size=u.BATCH)
    samplers = {}
    t0 = time.perf_counter()
    for v in dict.fromkeys(v.removesuffix("+filter") for v in missing):
        samplers[v] = u.the_recipe(labelled, unlabelled, name, regime, seed, args).sampler if v == "default" else \
            generator_variant(labelled, name, regime, seed, float(v[2:]), args)
    fit_seconds = time.perf_counter() - t0
    variants = {v: filtered(samplers[v.removesuffix("+filter")], judge) if v.endswith("+filter")
                else samplers[v] for v in missing}
    for variant, sampler in variants.items():
        cas = train_method(x, y, k, Method(sampling="balanced"), steps=u.STEPS, seed=seed, batch_size=u.BATCH,
                           synthetic=SyntheticMix(sampler, p=1.0, labels="same", seed=seed))
        arms[f"{variant}:cas"] = {"val": u.scores(cas, val, rare), "test": u.scores(cas, test, rare)}
        for method in (Method(sampling="balanced"), Method(loss="logit_adjusted")):
            for dose in u.DOSES:
                model = train_method(x, y, k, method, steps=u.STEPS, seed=seed, batch_size=u.BATCH,
                                     synthetic=SyntheticMix(sampler, p=dose, labels="same", seed=seed))
                arms[f"{method.name}+{variant}@{dose:g}"] = {"val": u.scores(model, val, rare),
                                                            "test": u.scores(model, test, rare)}
    return {"dataset": name, "regime": regime, "seed": seed, "model": args.model, "candidates": CANDIDATES,
            "fit_seconds": {**_fit_seconds(done), ",".join(missing): round(fit_seconds, 1)}, "arms": arms}


def _fit_seconds(done: dict) -> dict:
    """Seconds spent fitting per batch of variants (the first runs wrote one number)."""
    previous = done.get("fit_seconds", {})
    return previous if isinstance(previous, dict) else {"default,default+filter,cb1": previous}


def _variants(args) -> list[str]:
    """The generator variants asked for: default, cb<B> per --class-balance, <v>+filter per --filter."""
    fits = ["default", *(f"cb{b:g}" for b in args.class_balance)]
    return fits + [f"{v}+filter" for v in args.filter if v in fits]


def _variant(arm: str) -> str:
    """``default+filter`` of ``default+filter:cas`` and of ``logit_adjust+default+filter@0.5``."""
    if arm.endswith(":cas"):
        return arm.removesuffix(":cas")
    return arm.rsplit("@", 1)[0].split("+", 1)[1]


def _task(job):
    name, regime, seed, args = job
    base = args.work / f"{args.model}_{name}_{regime}_{seed}.json"
    if not base.exists():  # usefulness.py did not run this task (e.g. stopped for time): nothing to pair with
        print(f"rare_classes: skipping {name} {regime} seed {seed}: {base} is missing (run benchmarks/usefulness.py "
              f"on this --work first)", file=sys.stderr, flush=True)
        return None
    path = args.work / f"rare_{args.model}_{name}_{regime}_{seed}.json"
    done = json.loads(path.read_text()) if path.exists() else {}
    t0 = time.perf_counter()
    result = run_task(name, regime, seed, args, done)
    if result is not done:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(result))
        os.replace(tmp, path)
        print(json.dumps({"dataset": name, "regime": regime, "seed": seed,
                          "seconds": round(time.perf_counter() - t0, 1)}), file=sys.stderr, flush=True)
    wanted = _variants(args)
    result = {**result, "arms": {n: a for n, a in result["arms"].items() if _variant(n) in wanted}}
    baselines = json.loads(base.read_text())["arms"]
    result["arms"] = {**{n: baselines[n] for n in ("real", "resample", "logit_adjust")}, **result["arms"]}
    return result


def summarise(results: list[dict]) -> list[dict]:
    from synthaug.metrics.stats import mean_interval, paired_gain

    rows = []
    for key in dict.fromkeys((r["dataset"], r["regime"]) for r in results):
        runs = sorted((r for r in results if (r["dataset"], r["regime"]) == key), key=lambda r: r["seed"])

        def test(n, metric="balanced_accuracy"):
            return [r["arms"][n]["test"][metric] for r in runs]

        def val(n):
            return mean_interval([r["arms"][n]["val"]["balanced_accuracy"] for r in runs])["mean"]

        baseline = max(("resample", "logit_adjust"), key=val)
        variants = [n.split(":")[0] for n in runs[0]["arms"] if n.endswith(":cas")]
        per_variant = {}
        for v in variants:
            top = [n for n in runs[0]["arms"] if n.startswith(f"{baseline}+{v}@")]
            best = max(top, key=val)
            per_variant[v] = {
                "cas_rare": mean_interval(test(f"{v}:cas", "rare_accuracy")),
                "cas_balanced": mean_interval(test(f"{v}:cas")),
                "on_top": best, "on_top_minus_baseline": paired_gain(test(baseline), test(best)),
                "on_top_minus_baseline_rare": paired_gain(test(baseline, "rare_accuracy"), test(best, "rare_accuracy"))}
        chosen = max((p["on_top"] for p in per_variant.values()), key=val)
        rows.append({"dataset": key[0], "regime": key[1], "seeds": [r["seed"] for r in runs],
                     "best_baseline": baseline,
                     "baseline_rare": mean_interval(test(baseline, "rare_accuracy")),
                     "real_rare": mean_interval(test("real", "rare_accuracy")),
                     "variants": per_variant, "chosen_on_val": chosen,
                     "chosen_minus_baseline": paired_gain(test(baseline), test(chosen)),
                     "chosen_minus_baseline_rare": paired_gain(test(baseline, "rare_accuracy"),
                                                               test(chosen, "rare_accuracy"))})
    return rows


def markdown(rows: list[dict], command: str) -> str:
    pts = u._pts
    lines = [f"`{command}`. Test accuracy; paired differences in points with 95% t intervals over the seeds; "
             "the dose (and the variant, last column) chosen on validation.", "",
             "| dataset | regime | best baseline (val.) | its rare-class acc. | generator | CAS, rare classes | "
             "CAS, balanced | on top (val.) | on top − baseline | …rare classes |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for v, p in r["variants"].items():
            lines.append(f"| {r['dataset']} | {r['regime']} | `{r['best_baseline']}` | "
                         f"{100 * r['baseline_rare']['mean']:.1f}% | `{v}` | {100 * p['cas_rare']['mean']:.1f}% | "
                         f"{100 * p['cas_balanced']['mean']:.1f}% | `{p['on_top']}` | "
                         f"{pts(p['on_top_minus_baseline'])} | **{pts(p['on_top_minus_baseline_rare'])}** |")
    lines += ["", "Chosen on validation across variants and doses:", "",
              "| dataset | regime | chosen | − best baseline | …rare classes |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['regime']} | `{r['chosen_on_val']}` | {pts(r['chosen_minus_baseline'])} | "
                     f"**{pts(r['chosen_minus_baseline_rare'])}** |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default=",".join(u.DATASETS))
    parser.add_argument("--regimes", default="b5")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--model", default="dcgan")
    parser.add_argument("--gen-steps", default="digits=3000,mnist5k=1000")
    parser.add_argument("--class-balance", default="1", help="fit class_balance values to try")
    parser.add_argument("--filter", default="default,cb1", help="variants also tried with classifier filtering")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("runs/usefulness"))
    parser.add_argument("--results", type=Path, default=u.RESULTS)
    args = parser.parse_args()
    args.gen_steps = {k: int(v) for k, _, v in (item.partition("=") for item in args.gen_steps.split(",") if item)}
    args.class_balance = [float(b) for b in args.class_balance.split(",") if b]
    args.filter = [v for v in args.filter.split(",") if v]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    jobs = [(name, regime, seed, args) for seed in range(args.seeds) for name in args.datasets.split(",")
            for regime in args.regimes.split(",")]
    rows = summarise([r for r in u.run_jobs(_task, jobs, args.jobs) if r is not None])
    command = " ".join(["python", "benchmarks/rare_classes.py", *sys.argv[1:]])
    doc = {"benchmark": "rare_classes", "command": command,
           "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, "rows": rows}
    u.write_results(args.results, "rare_classes", doc, markdown(rows, command))


if __name__ == "__main__":
    main()
