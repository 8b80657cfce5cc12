"""Classification Accuracy Score of the default `synthaug fit` on digits.

Fits the default generator on the stratified 75% training split (`digits:train`) through the
CLI, exports it to ONNX, then trains the same small CNN once on generated digits only and once
on the real training digits, and tests both on the real held-out 25% (`digits:test`): the CAS of
`synthaug eval` (`synthaug.metrics.classification_accuracy_score`), with as many optimiser steps
as `--classifier-epochs` passes over digits:train in batches of 64.

    python benchmarks/cas_digits.py [--model dcgan] [--seeds 0] [--classifier-seeds 0 1 2]

Writes benchmarks/results/cas_digits.json and cas_digits.md.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import synthaug
from synthaug.data import load_data
from synthaug.metrics import classification_accuracy_score

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="dcgan")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="fit seeds")
    parser.add_argument("--classifier-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--classifier-epochs", type=int, default=30,
                        help="classifier training length, in passes over digits:train (batches of 64)")
    parser.add_argument("--steps", type=int, help="override the default training length")
    args = parser.parse_args()

    train, test = load_data("digits:train"), load_data("digits:test")
    classifier_steps = args.classifier_epochs * math.ceil(len(train) / 64)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            run_dir = Path(tmp) / f"run{seed}"
            cmd = [sys.executable, "-m", "synthaug", "fit", "digits:train", "--model", args.model,
                   "--out", str(run_dir), "--seed", str(seed), "--no-progress"]
            if args.steps:
                cmd += ["--steps", str(args.steps)]
            t0 = time.perf_counter()
            fit_summary = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            fit_wall = time.perf_counter() - t0
            export = subprocess.run([sys.executable, "-m", "synthaug", "export", str(run_dir),
                                     "--out", str(run_dir / "model.onnx")],
                                    check=True, capture_output=True, text=True)
            parity = json.loads(export.stdout)["max_abs_diff"]
            sampler = synthaug.load(run_dir)
            scores = [classification_accuracy_score(sampler, train, test, steps=classifier_steps, seed=cs)
                      for cs in args.classifier_seeds]
            rows.append({
                "seed": seed, "steps": fit_summary["steps"], "fit_seconds": fit_summary["seconds"],
                "fit_wall_seconds": round(fit_wall, 1), "peak_rss_mb": fit_summary["peak_rss_mb"],
                "onnx_parity_max_abs_diff": parity,
                "held_out_metrics": fit_summary.get("metrics", {}),
                "cas": statistics.mean(s["cas"] for s in scores),
                "real_accuracy": statistics.mean(s["real_accuracy"] for s in scores),
                "per_classifier_seed": scores,
            })
            rows[-1]["ratio"] = rows[-1]["cas"] / rows[-1]["real_accuracy"]
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "per_classifier_seed"}), file=sys.stderr)

    result = {
        "benchmark": "cas_digits", "model": args.model, "train": "digits:train (1347)", "test": "digits:test (450)",
        "synthetic_set": "same class counts as digits:train",
        "classifier": f"synthaug.metrics.SmallCNN, {classifier_steps} steps of 64 ({args.classifier_epochs} epochs)",
        "machine": {"cpus": torch.get_num_threads(), "platform": platform.platform(), "torch": torch.__version__},
        "command": " ".join(["python", "benchmarks/cas_digits.py", *sys.argv[1:]]),
        "runs": rows,
        "cas_mean": statistics.mean(r["cas"] for r in rows),
        "real_accuracy_mean": statistics.mean(r["real_accuracy"] for r in rows),
    }
    result["ratio_mean"] = result["cas_mean"] / result["real_accuracy_mean"]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"cas_digits_{args.model}.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"| model | fit seed | steps | fit time (s, {result['machine']['cpus']} threads) | peak RSS (MiB) | "
        "CAS (synthetic only) | real-data accuracy | CAS / real | ONNX parity (max abs diff) | held-out metrics |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {args.model} | {r['seed']} | {r['steps']} | {r['fit_seconds']:.0f} | {r['peak_rss_mb']:.0f} | "
                     f"{r['cas']:.1%} | {r['real_accuracy']:.1%} | {r['ratio']:.3f} | {r['onnx_parity_max_abs_diff']:.1e} | "
                     + (", ".join(f"{k} {v:.3f}" for k, v in r["held_out_metrics"].items()) or "–") + " |")
    (RESULTS / f"cas_digits_{args.model}.md").write_text("\n".join(lines) + "\n")
    print(json.dumps({"cas": result["cas_mean"], "real_accuracy": result["real_accuracy_mean"],
                      "ratio": result["ratio_mean"]}))


if __name__ == "__main__":
    main()
