"""Every family's defaults on colour photographs (``photos``, 32x32 RGB), judged as a user would.

For each family (``--models``) and generator seed (``--gen-seeds``): ``synthaug fit photos:train
--model F --seed S`` with nothing else. Generator seed 0 then gets the whole ``synthaug eval``
(``--seeds 3 --doses 0,0.25,0.5``: quality, CAS, and the downstream gain with its recommended
dose). Every generator seed gets eval's sample quality and CAS, computed by the same functions,
in the same feature space and with the same classifier settings, but without the gain
experiment: each gain arm is a classifier trained from scratch, and 9 arms for every generator
of every family do not fit in a session on 2 cores. (For seed 0 both routes are run, and the
results file says whether they agree.)

    OMP_NUM_THREADS=1 python benchmarks/photos_families.py --work DIR [--models gan dcgan vae]

Fits, measurements and reports already in DIR (``photos_F_sS/card.json``,
``photos_F_sS.measured.json``, ``photos_F_s0_report/report.json``) are reused, so an interrupted run continues. Writes benchmarks/results/photos_families.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import torch

import synthaug
from synthaug.atomic import atomic_write_text
from synthaug.evaluation.defaults import DEFAULT_REFERENCE_STEPS
from synthaug.metrics.features import CACHE_DIR, reference_classifier, small_cnn_space
from synthaug.evaluation.pipeline import measure_quality
from synthaug.metrics.cas import classification_accuracy_score, generate_images
from synthaug.metrics.specs import classifier_factory

RESULTS = Path(__file__).with_name("results")
EVAL_SEEDS = 3
DOSES = "0,0.25,0.5"


def cli(argv: list[str], log: Path) -> None:
    with log.open("w") as fh:
        subprocess.run([sys.executable, "-m", "synthaug", *argv], check=True, stdout=fh, stderr=subprocess.STDOUT)


def fit(work: Path, family: str, seed: int) -> Path:
    run = work / f"photos_{family}_s{seed}"
    if not (run / "card.json").is_file():
        cli(["fit", "photos:train", "--model", family, "--seed", str(seed), "--out", str(run), "--no-progress"],
            work / f"{run.name}.log")
    return run


def full_eval(work: Path, run: Path) -> dict:
    report = work / f"{run.name}_report"
    if not (report / "report.json").is_file():
        # The feature network depends only on the data and its settings: reuse the one trained here.
        shutil.copytree(work / CACHE_DIR, report / CACHE_DIR, dirs_exist_ok=True)
        cli(["eval", str(run), "--data", "photos:train", "--test", "photos:test", "--seeds", str(EVAL_SEEDS),
             "--doses", DOSES, "--out", str(report), "--no-progress", "--force"], work / f"{report.name}.log")
    return json.loads((report / "report.json").read_text())


def quality_and_cas(run: Path, train, test, space, reference) -> dict:
    """What ``synthaug eval`` measures before the gain experiment, with its default settings."""
    sampler = synthaug.load(run)
    labels = test.labels.clone()
    generated = generate_images(sampler, labels, 0)
    quality = measure_quality(space, train, test, generated, labels, k=3, kid_subsets=100, seed=0)
    factory, _ = classifier_factory("small_cnn")
    cas = classification_accuracy_score(sampler, train, test, steps=DEFAULT_REFERENCE_STEPS, seed=0,
                                        reference=reference, model_factory=factory)
    g = quality["generated"]
    return {"cas": cas["cas"], "real_accuracy": cas["real_accuracy"], "cas_ratio": cas["ratio"],
            **{k: g[k] for k in ("fid", "kid", "precision", "recall", "density", "coverage")}}


def cached_measure(run: Path, train, test, space, reference) -> dict:
    """quality_and_cas, kept beside the run (``RUN.measured.json``) so a later call with more
    families does not measure the same generator again."""
    path = run.with_name(run.name + ".measured.json")
    if path.is_file():
        return json.loads(path.read_text())
    measured = quality_and_cas(run, train, test, space, reference)
    atomic_write_text(path, json.dumps(measured) + "\n")
    return measured


def gain_summary(report: dict) -> dict:
    """The gain experiment's per-dose mean and interval (percentage points) and the recommendation."""
    arms = report["gain"]["fractions"][0]["arms"]
    doses = {str(float(a["dose"])): {"accuracy": a["accuracy"]["mean"], "gain": a.get("gain")} for a in arms}
    return {"doses": doses, "recommended_dose": report["recommendation"]["dose"],
            "recommendation": report["recommendation"]["text"]}


def summarise(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("photos_families_work"))
    parser.add_argument("--models", nargs="+", default=["gan", "dcgan", "vae"])
    parser.add_argument("--gen-seeds", nargs="+", type=int, default=[0, 1, 2])
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)

    train, test = synthaug.load_data("photos:train"), synthaug.load_data("photos:test")
    reference, info = reference_classifier(train, DEFAULT_REFERENCE_STEPS, 0, cache_dir=args.work)
    space = small_cnn_space(reference, info)
    rows = []
    for family in args.models:
        per_seed = []
        for seed in args.gen_seeds:
            run = fit(args.work, family, seed)
            card = json.loads((run / "card.json").read_text())
            measured = cached_measure(run, train, test, space, reference)
            per_seed.append({"seed": seed, "fit_seconds": card["training"]["seconds"],
                             "steps": card["training"]["steps"], "config": card["config"], **measured})
            print(json.dumps({"family": family, **per_seed[-1]}), file=sys.stderr, flush=True)
        report = full_eval(args.work, fit(args.work, family, args.gen_seeds[0]))
        seed0 = per_seed[0]
        rows.append({
            "family": family, "seeds": per_seed,
            "cas_ratio": summarise([s["cas_ratio"] for s in per_seed]),
            **{k: summarise([s[k] for s in per_seed]) for k in ("fid", "kid", "precision", "recall")},
            "eval": {"seed": args.gen_seeds[0], **gain_summary(report),
                     "agrees_with_quality_and_cas": abs(report["cas"]["ratio"] - seed0["cas_ratio"]) < 1e-9
                     and abs(report["quality"]["generated"]["fid"] - seed0["fid"]) < 1e-6},
        })
    result = {"machine": f"{os.cpu_count()} CPU cores, torch {torch.__version__}, {torch.get_num_threads()} thread(s)",
              "command": " ".join(["python", "benchmarks/photos_families.py", *sys.argv[1:]]),
              "eval": {"seeds": EVAL_SEEDS, "doses": DOSES, "reference_steps": DEFAULT_REFERENCE_STEPS},
              "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    atomic_write_text(RESULTS / "photos_families.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(RESULTS / "photos_families.md", to_markdown(result))
    print(to_markdown(result))


def fmt(s: dict, digits: int = 3, pct: bool = False) -> str:
    f = (lambda v: f"{v:.1%}") if pct else (lambda v: f"{v:.{digits}f}")
    return f"{f(s['median'])} [{f(s['min'])}, {f(s['max'])}]"


def to_markdown(result: dict) -> str:
    lines = ["# Every family's defaults on `photos` (32x32 RGB, 360 training images, 6 classes)", "",
             f"`{result['command']}` ({result['machine']}). Each family fitted with defaults and generator "
             "seeds " + ", ".join(str(s["seed"]) for s in result["rows"][0]["seeds"]) +
             "; median [range] over those seeds, in `synthaug eval`'s feature space and CAS settings.", "",
             "| family | steps | fit time | CAS ratio | FID | KID | precision | recall |",
             "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        minutes = statistics.median(s["fit_seconds"] for s in r["seeds"]) / 60
        lines.append(f"| {r['family']} | {r['seeds'][0]['steps']} | {minutes:.1f} min | {fmt(r['cas_ratio'])} | "
                     f"{fmt(r['fid'], 2)} | {fmt(r['kid'], 4)} | {fmt(r['precision'], pct=True)} | "
                     f"{fmt(r['recall'], pct=True)} |")
    lines += ["", f"Downstream gain of generator seed 0 (`synthaug eval --seeds {result['eval']['seeds']} --doses "
                  f"{result['eval']['doses']}`, 400 classifier steps, classical augmentation on, paired seeds):", "",
              "| family | dose 0 accuracy | gain at 0.25 | gain at 0.5 | recommended dose |", "|---|---|---|---|---|"]
    for r in result["rows"]:
        doses = r["eval"]["doses"]

        def gain(d):
            g = doses.get(d, {}).get("gain")
            return "-" if not g else f"{g['mean'] * 100:+.1f} ± {g['ci95'] * 100:.1f} pts"
        lines.append(f"| {r['family']} | {doses['0.0']['accuracy']:.1%} | {gain('0.25')} | {gain('0.5')} | "
                     f"{r['eval']['recommended_dose'] if r['eval']['recommended_dose'] is not None else 'none'} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
