"""Does synthetic data help a classifier? Accuracy with and without, over several seeds.

    python benchmarks/augmentation_gain.py [--seeds 0 1 2 3 4] [--fraction 0.1] [--ratio 1.0]

For each seed: take `fraction` of digits:train (stratified by that seed), fit the default dcgan
on that part only, then train the small CNN for the same number of steps (a) on the real part
alone, (b) on real + SyntheticDataset (`ratio` synthetic items per real item), and (c) with
SyntheticMix appending p=1.0 synthetic rows per batch; test on digits:test. Then the same at
100% of digits:train with one generator fitted on all of it. Reports mean and 95% interval
(t distribution) of accuracy and of the gain. Writes benchmarks/results/augmentation_gain.json
and .md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from torch.utils.data import TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from _digits import fit_generator, scarce_digits, to_tensor, train_and_test  # noqa: E402

from synthaug import SyntheticDataset, SyntheticMix  # noqa: E402
from synthaug.data import load_data  # noqa: E402

RESULTS = Path(__file__).parent / "results"
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def interval(values: list[float]) -> tuple[float, float]:
    mean = statistics.mean(values)
    if len(values) < 2:
        return mean, float("nan")
    return mean, T95.get(len(values) - 1, 1.96) * statistics.stdev(values) / len(values) ** 0.5


def variants(real, sampler, test, steps: int, seed: int, ratio: float) -> dict[str, float]:
    tensors = TensorDataset(real.as_float(), real.labels)
    wrapped = SyntheticDataset(real, sampler, ratio=ratio, transform=to_tensor, seed=seed)
    mix = SyntheticMix(sampler, p=1.0, mode="append", seed=seed)
    return {
        "real_only": train_and_test(tensors, test, steps, seed),
        "synthetic_dataset": train_and_test(wrapped, test, steps, seed),
        "synthetic_mix": train_and_test(tensors, test, steps, seed, batch_hook=mix),
    }


def summarise(rows: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    out = {}
    for key in ("real_only", "synthetic_dataset", "synthetic_mix"):
        mean, half = interval([r[key] for r in rows])
        out[key] = {"mean": mean, "ci95": half}
        if key != "real_only":
            gmean, ghalf = interval([r[key] - r["real_only"] for r in rows])
            out[key + "_gain"] = {"mean": gmean, "ci95": ghalf}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--ratio", type=float, default=1.0)
    parser.add_argument("--gen-steps", type=int, default=3000)
    parser.add_argument("--clf-steps", type=int, default=600)
    args = parser.parse_args()

    scarce, full = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            small, test = scarce_digits(args.fraction, seed)
            sampler = fit_generator(small, Path(tmp) / f"scarce{seed}", args.gen_steps, seed)
            scarce.append({"seed": seed, **variants(small, sampler, test, args.clf_steps, seed, args.ratio)})
            print(json.dumps({"fraction": args.fraction, **scarce[-1]}), file=sys.stderr)
        train, test = load_data("digits:train"), load_data("digits:test")
        sampler = fit_generator(train, Path(tmp) / "full", args.gen_steps, 0)
        for seed in args.seeds:
            full.append({"seed": seed, **variants(train, sampler, test, args.clf_steps, seed, args.ratio)})
            print(json.dumps({"fraction": 1.0, **full[-1]}), file=sys.stderr)

    result = {"benchmark": "augmentation_gain", "command": " ".join(["python", "benchmarks/augmentation_gain.py",
                                                                      *sys.argv[1:]]),
              "settings": vars(args), "scarce": {"rows": scarce, "summary": summarise(scarce)},
              "full": {"rows": full, "summary": summarise(full)}}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "augmentation_gain.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [f"| digits:train used | real only | + SyntheticDataset (ratio {args.ratio:g}) | gain | "
          "+ SyntheticMix (append, p=1) | gain |", "|---|---|---|---|---|---|"]
    for name, part, frac in (("scarce", scarce, args.fraction), ("full", full, 1.0)):
        s = summarise(part)
        cell = lambda k: f"{s[k]['mean']:.1%} ± {s[k]['ci95']:.1%}"  # noqa: E731
        gain = lambda k: f"{s[k]['mean'] * 100:+.1f} ± {s[k]['ci95'] * 100:.1f} pts"  # noqa: E731
        md.append(f"| {frac:.0%} ({len(part)} seeds) | {cell('real_only')} | {cell('synthetic_dataset')} | "
                  f"{gain('synthetic_dataset_gain')} | {cell('synthetic_mix')} | {gain('synthetic_mix_gain')} |")
    (RESULTS / "augmentation_gain.md").write_text("\n".join(md) + "\n")
    print(json.dumps({k: v["summary"] for k, v in (("scarce", result["scarce"]), ("full", result["full"]))}))


if __name__ == "__main__":
    main()
