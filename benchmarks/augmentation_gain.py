"""Does synthetic data help a classifier? ``synthaug.evaluate`` on digits, at 10% and 100% of the data.

    python benchmarks/augmentation_gain.py [--model dcgan] [--fraction 0.1] [--seeds 5]
                                           [--doses 0,0.1,0.25,0.5] [--gen-steps 3000] [--reports DIR]

For each share of digits:train (``--fraction``, stratified with seed 0, and all of it): fit the
generator on that share only, then run ``synthaug.evaluate`` with that share as the training
data and digits:test as the test data — the very code path of ``synthaug eval``: paired seeds,
classical augmentation in every arm, the same optimiser steps per arm, SyntheticMix at each
dose. Writes benchmarks/results/augmentation_gain_<models>.json and .md (CAS ratio, FID,
precision/recall, near-copy share, baseline accuracy, recommended dose and its gain); the full
reports (report.html, ...) go to ``--reports`` (default: a temporary directory).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import synthaug
from synthaug.data import load_data, stratified_split
from synthaug.evaluation import evaluate
from synthaug.evaluation.cli import parse_shares

RESULTS = Path(__file__).parent / "results"


def fit_generator(data, out: Path, model: str, steps: int, seed: int) -> synthaug.Sampler:
    run = synthaug.fit(data, out=out, model=model, steps=steps, seed=seed, force=True, progress=False)
    return run.sampler()


def measure(model: str, fraction: float, args: argparse.Namespace, reports: Path) -> dict:
    train, test = load_data("digits:train"), load_data("digits:test")
    if fraction < 1:
        train = train.subset(stratified_split(train.labels, fraction, seed=0)[1])
    t0 = time.perf_counter()
    sampler = fit_generator(train, reports / f"{model}_{fraction:g}_run", model, args.gen_steps, seed=0)
    fit_seconds = time.perf_counter() - t0
    report = evaluate(sampler, train, test, seeds=args.seeds, doses=parse_shares(args.doses, "--doses"),
                      out=reports / f"{model}_{fraction:g}_report", force=True, progress=args.progress)
    r = report.results
    base = r["gain"]["fractions"][0]["arms"][0]["accuracy"]
    return {"model": model, "fraction": fraction, "train_size": len(train), "fit_seconds": round(fit_seconds, 1),
            "eval_seconds": r["seconds"], "cas_ratio": r["cas"]["ratio"], "fid": r["quality"]["generated"]["fid"],
            "heldout_fid": r["quality"]["heldout_real"]["fid"], "precision": r["quality"]["generated"]["precision"],
            "recall": r["quality"]["generated"]["recall"], "near_copy_share": r["memorisation"]["near_copy_share"],
            "baseline_accuracy": base, "recommendation": r["recommendation"],
            "arms": [{k: arm.get(k) for k in ("dose", "accuracy", "gain")}
                     for arm in r["gain"]["fractions"][0]["arms"]],
            "report": str(report.out)}


def _f(value, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def markdown(rows: list[dict]) -> str:
    lines = ["| model | digits:train used | CAS / real | FID (held-out real) | precision | recall | near-copies | "
             "real + classical aug. | recommendation | warnings |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        base = r["baseline_accuracy"]
        lines.append(f"| {r['model']} | {r['fraction']:.0%} ({r['train_size']}) | {_f(r['cas_ratio'], '.3f')} | "
                     f"{_f(r['fid'], '.2f')} ({_f(r['heldout_fid'], '.2f')}) | {_f(r['precision'], '.1%')} | "
                     f"{_f(r['recall'], '.1%')} | {_f(r['near_copy_share'], '.1%')} | "
                     f"{base['mean']:.1%} ± {_f(base['ci95'], '.1%')} | "
                     f"{r['recommendation']['text']} | {'; '.join(r['recommendation']['warnings']) or '–'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", nargs="+", default=["dcgan"], help="generator families")
    parser.add_argument("--fraction", type=float, default=0.1, help="the scarce share of digits:train")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--doses", default="0,0.1,0.25,0.5")
    parser.add_argument("--gen-steps", type=int, default=3000)
    parser.add_argument("--reports", type=Path, help="where the full reports go (default: a temporary directory)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the JSON and Markdown tables go")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        reports = args.reports or Path(tmp)
        reports.mkdir(parents=True, exist_ok=True)
        for model in args.model:
            for fraction in (args.fraction, 1.0):
                rows.append(measure(model, fraction, args, reports))
                print(json.dumps({k: rows[-1][k] for k in ("model", "fraction", "cas_ratio", "fid")}
                                 | {"recommendation": rows[-1]["recommendation"]["text"]}), file=sys.stderr)
    name = "augmentation_gain_" + "_".join(args.model)
    result = {"benchmark": "augmentation_gain", "command": " ".join(["python", "benchmarks/augmentation_gain.py",
                                                                      *sys.argv[1:]]),
              "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, "rows": rows}
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.results / f"{name}.md").write_text(markdown(rows))
    print(json.dumps([{k: r[k] for k in ("model", "fraction")} | {"recommendation": r["recommendation"]["text"]}
                      for r in rows]))


if __name__ == "__main__":
    main()
