"""Sampling throughput per family: torch eager against ONNX Runtime on the CPU.

For every registered family (or those given with --models), builds the generator at its default
config for the digits shape (1, 8, 8) with 10 classes (untrained weights: throughput does not
depend on them), exports it with exporters.onnx, and times ``Sampler.sample`` at batch 256 on
both backends side by side in one process: warm-up, then several repetitions, median.
Autoregressive families (pixelrnn) run at a smaller count (--slow-count).

    python benchmarks/sampling_throughput.py [--models gan dcgan vae] [--repeats 7]

Writes benchmarks/results/sampling_throughput.json and sampling_throughput.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import onnxruntime as ort
import torch

from exporters.onnx import export
from synthaug import OnnxSampler, TorchSampler
from synthaug.card import GeneratorCard
from synthaug.models import create_generator, list_models

RESULTS = Path(__file__).parent / "results"
SHAPE, CLASSES, BATCH = (1, 8, 8), 10, 256
#: Families whose sampling is one network call per pixel: timed on fewer images.
SLOW_FAMILIES = ("pixelrnn",)


def make_card(family: str, module) -> GeneratorCard:
    return GeneratorCard(family=family, config={}, image_shape=list(SHAPE), num_classes=CLASSES,
                         class_names=[str(i) for i in range(CLASSES)], noise=module.noise_spec(),
                         output={"dtype": "float32", "layout": "NCHW", "range": [0.0, 1.0], "pixel_max": 16})


def onnx_sampler(path: Path, threads: int, spin: bool) -> OnnxSampler:
    """The library's OnnxSampler: by default its threads do not spin between runs (right when
    sampling alternates with torch work); ``spin=True`` suits back-to-back sampling."""
    return OnnxSampler(str(path), threads=threads, batch_size=BATCH, spin=spin)


def time_sampler(sampler, count: int, warmup: int, repeats: int) -> list[float]:
    labels = torch.arange(count) % CLASSES
    for i in range(warmup):
        sampler.sample(labels, seed=i)
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        sampler.sample(labels, seed=100 + i)
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list_models())
    parser.add_argument("--count", type=int, default=4 * BATCH, help="images per timed call")
    parser.add_argument("--slow-count", type=int, default=BATCH, help="images per call for " + ", ".join(SLOW_FAMILIES))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()

    threads = torch.get_num_threads()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for family in args.models:
            torch.manual_seed(0)
            module = create_generator(family, None, SHAPE, CLASSES).eval()
            card = make_card(family, module)
            path = export((module, card), Path(tmp) / f"{family}.onnx").path
            count = args.slow_count if family in SLOW_FAMILIES else args.count
            backends = {
                "torch eager": TorchSampler(module, card, batch_size=BATCH),
                "onnxruntime": onnx_sampler(path, threads, spin=False),
                "onnxruntime (spin=True)": onnx_sampler(path, threads, spin=True),
            }
            # Interleave the backends, repetition by repetition, so a load change hits all alike.
            times = {name: [] for name in backends}
            for name, sampler in backends.items():
                time_sampler(sampler, count, args.warmup, 0)
            for _ in range(args.repeats):
                for name, sampler in backends.items():
                    times[name] += time_sampler(sampler, count, 0, 1)
            row = {"family": family, "images_per_call": count, "batch": BATCH,
                   "parameters": sum(p.numel() for p in module.parameters())}
            for name, ts in times.items():
                row[name] = {"median_s": statistics.median(ts), "images_per_s": count / statistics.median(ts),
                             "times_s": [round(t, 5) for t in ts]}
            torch_ips = row["torch eager"]["images_per_s"]
            row["ort_over_torch"] = row["onnxruntime"]["images_per_s"] / torch_ips
            row["ort_spin_over_torch"] = row["onnxruntime (spin=True)"]["images_per_s"] / torch_ips
            rows.append(row)
            print(json.dumps({"family": family, "torch_ips": round(torch_ips),
                              "ort_ips": round(row["onnxruntime"]["images_per_s"]),
                              "ratio": round(row["ort_over_torch"], 2),
                              "spin_ratio": round(row["ort_spin_over_torch"], 2)}), file=sys.stderr)

    result = {
        "benchmark": "sampling_throughput", "shape": list(SHAPE), "num_classes": CLASSES, "batch": BATCH,
        "config": "family defaults, untrained weights", "repeats": args.repeats, "warmup": args.warmup,
        "statistic": "median seconds per call of Sampler.sample (noise drawn on the CPU included)",
        "machine": {"threads": threads, "platform": platform.platform(), "torch": torch.__version__,
                    "onnxruntime": ort.__version__},
        "command": " ".join(["python", "benchmarks/sampling_throughput.py", *sys.argv[1:]]),
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sampling_throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"| family | images/call | torch eager (img/s) | ONNX Runtime (img/s) | ORT / torch | "
        f"ORT, spin=True (img/s) | spin / torch |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['family']} | {r['images_per_call']} | {r['torch eager']['images_per_s']:,.0f} | "
                     f"{r['onnxruntime']['images_per_s']:,.0f} | {r['ort_over_torch']:.2f}x | "
                     f"{r['onnxruntime (spin=True)']['images_per_s']:,.0f} | "
                     f"{r['ort_spin_over_torch']:.2f}x |")
    lines.append("")
    lines.append(f"Batch {BATCH}, shape {list(SHAPE)}, {CLASSES} classes, {threads} torch threads = ORT "
                 f"intra-op threads; median of {args.repeats} calls, backends interleaved. "
                 f"`{result['command']}`")
    (RESULTS / "sampling_throughput.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
