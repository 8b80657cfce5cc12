"""Cached against naive PixelRNN sampling, side by side in one run, on the same model and noise.

The model is the default `pixelrnn` config at 1x28x28 with 10 classes (untrained weights, seeded:
speed does not depend on training). Naive sampling reruns the whole network once per sub-pixel;
cached sampling computes only the new pixel's column from the cached row states. Both sample
the full image from the same noise and must give identical images. The exported one-graph ONNX
sampler (one `Loop`) is timed on the same batch with ONNX Runtime.

    python benchmarks/pixelrnn_sampling.py [--batch 16] [--size 28] [--threads N] [--repeats 3]

Writes benchmarks/results/pixelrnn_sampling.json and pixelrnn_sampling.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from synthaug.card import GeneratorCard
from synthaug.models import create_generator
from synthaug.models.pixelrnn_sampling import sample_cached, sample_naive

RESULTS = Path(__file__).parent / "results"


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--threads", type=int, help="torch and ONNX Runtime intra-op threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=3, help="cached and ONNX runs (median reported)")
    parser.add_argument("--no-onnx", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()

    shape = (1, args.size, args.size)
    torch.manual_seed(0)
    g = create_generator("pixelrnn", None, shape, num_classes=10).eval()
    rng = torch.Generator().manual_seed(1)
    noise = torch.rand(args.batch, *shape, generator=rng)
    labels = torch.arange(args.batch) % 10

    with torch.inference_mode():
        sample_cached(g, noise[:2], labels[:2], progress=False)  # warm-up
        cached_times = []
        for _ in range(args.repeats):
            cached, seconds = timed(sample_cached, g, noise, labels, False)
            cached_times.append(seconds)
        naive, naive_seconds = timed(sample_naive, g, noise, labels)
    cached_seconds = statistics.median(cached_times)
    result = {
        "benchmark": "pixelrnn_sampling",
        "command": " ".join(["python", "benchmarks/pixelrnn_sampling.py", *sys.argv[1:]]),
        "model": {"family": "pixelrnn", "config": dict(g.config.__dict__), "image_shape": list(shape),
                  "num_classes": 10, "weights": "untrained, torch.manual_seed(0)"},
        "batch": args.batch,
        "subpixels_per_image": int(np.prod(shape)),
        "naive_seconds": round(naive_seconds, 3),
        "cached_seconds": round(cached_seconds, 4),
        "cached_seconds_all": [round(t, 4) for t in cached_times],
        "speedup": round(naive_seconds / cached_seconds, 1),
        "identical_images": bool(torch.equal(cached, naive)),
        "equal_subpixel_fraction": float((cached == naive).float().mean()),
        "machine": {"cpus": os.cpu_count(), "torch_threads": threads, "platform": platform.platform(),
                    "torch": torch.__version__, "load_average_1min": round(os.getloadavg()[0], 2)},
    }
    if not args.no_onnx:
        result["onnx"] = onnx_timing(g, shape, noise, labels, cached, threads, args.repeats)
    print(json.dumps(result, indent=2))

    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "pixelrnn_sampling.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "pixelrnn_sampling.md").write_text(markdown(result))


def onnx_timing(g, shape, noise, labels, cached, threads, repeats) -> dict:
    import onnxruntime as ort

    from exporters.onnx import export

    card = GeneratorCard("pixelrnn", dict(g.config.__dict__), list(shape), 10, [str(i) for i in range(10)],
                         g.noise_spec(), {"dtype": "float32", "layout": "NCHW", "range": [0.0, 1.0],
                                          "pixel_max": 255})
    with tempfile.TemporaryDirectory() as tmp:
        (exported, export_seconds) = timed(export, (g, card), Path(tmp) / "m.onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        session = ort.InferenceSession(str(exported.path), options, providers=["CPUExecutionProvider"])
        feed = {"noise": noise.numpy(), "labels": labels.numpy()}
        session.run(None, feed)  # warm-up
        times, got = [], None
        for _ in range(repeats):
            (got,), seconds = timed(session.run, None, feed)
            times.append(seconds)
    return {"graph": "one Loop over the sub-pixels (cached row states as loop-carried values)",
            "export_seconds": round(export_seconds, 1), "seconds": round(statistics.median(times), 4),
            "seconds_all": [round(t, 4) for t in times],
            "equal_subpixel_fraction_vs_torch": float((torch.from_numpy(got) == cached).float().mean())}


def markdown(r: dict) -> str:
    m = r["machine"]
    lines = [
        "# PixelRNN sampling: cached vs naive",
        "",
        f"Default `pixelrnn` config ({r['model']['config']['hidden']} hidden, {r['model']['config']['layers']} Row "
        f"LSTM layers, {r['model']['config']['levels']} levels), {'x'.join(map(str, r['model']['image_shape']))}, "
        f"batch {r['batch']}, the full image ({r['subpixels_per_image']} sub-pixels) from the same noise, "
        f"untrained weights. {m['cpus']} CPUs, {m['torch_threads']} torch thread(s), torch {m['torch']}, "
        f"1-min load average {m['load_average_1min']} (shared machine).",
        "",
        "| sampler | seconds per batch | speed-up | identical samples |",
        "|---|---|---|---|",
        f"| naive (full network per sub-pixel) | {r['naive_seconds']:.1f} | 1x | reference |",
        f"| cached (row states, one column per step) | {r['cached_seconds']:.3f} | **{r['speedup']:.0f}x** | "
        f"{r['equal_subpixel_fraction']:.2%} of sub-pixels |",
    ]
    if "onnx" in r:
        o = r["onnx"]
        lines.append(f"| ONNX Runtime, one-graph `Loop` (cached) | {o['seconds']:.3f} | "
                     f"{r['naive_seconds'] / o['seconds']:.0f}x | {o['equal_subpixel_fraction_vs_torch']:.2%} "
                     f"of sub-pixels vs torch cached |")
    lines += ["", f"Command: `{r['command']}`", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
