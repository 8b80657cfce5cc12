"""Fit a conditional DCGAN on the built-in digits, export it to ONNX, and sample from both.

    python examples/quickstart.py [--out runs/quickstart] [--steps 3000]

Prints one JSON line: the run directory, the ONNX parity figure, and how far the torch and
ONNX Runtime samples of the same seed are apart.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import synthaug
from exporters.onnx import export
from synthaug.grid import save_grid


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="runs/quickstart")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--width", type=int, default=64, help="network width (smaller is faster)")
    args = parser.parse_args()

    run = synthaug.fit("digits", out=args.out, steps=args.steps, force=True,
                       config={"g_width": args.width, "d_width": args.width})
    # Outputs go beside the run, not into it: --force only replaces a run directory that holds
    # nothing but fit's own files.
    out = Path(args.out)
    model, grid = out.parent / f"{out.name}.onnx", out.parent / f"{out.name}-grid.png"
    exported = export(run.path, model)

    torch_sampler = synthaug.load(run.path)                  # PyTorch
    onnx_sampler = synthaug.load(model)                      # ONNX Runtime
    images, labels = torch_sampler.sample_per_class(8, seed=0)
    same = onnx_sampler.sample(labels, seed=0)
    save_grid(images, 8, grid)                               # one row per class

    print(json.dumps({"run": str(run.path), "onnx_parity": exported.max_abs_diff,
                      "torch_vs_onnx_same_seed": float((images - same).abs().max()),
                      "model": str(model), "grid": str(grid)}))


if __name__ == "__main__":
    main()
