"""The synthaug albumentations transform inside a standard pipeline.

    python examples/albumentations_pipeline.py [--run runs/digits] [--out pipeline.png]

With probability p, SyntheticReplace swaps a sample's image for a synthetic image of its own
class (read from the `label` target); the rest of the pipeline (shift/scale/rotate, noise,
normalisation) treats it like any image. The pipeline round-trips through A.to_dict/A.from_dict
(it stores the generator's path). Writes a picture: original digits (top) and pipeline outputs
(bottom), and prints a JSON summary.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import albumentations as A
import numpy as np
import torch

import synthaug
from synthaug.augment.albumentations import SyntheticReplace
from synthaug.data import load_data
from synthaug.grid import save_grid


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--run", default="runs/digits", help="a fitted run (fitted here on digits if missing)")
    p.add_argument("--steps", type=int, default=3000, help="steps if the run has to be fitted")
    p.add_argument("--p", type=float, default=0.5)
    p.add_argument("--out", default="pipeline.png")
    args = p.parse_args()
    if not Path(args.run).exists():
        synthaug.fit("digits", out=args.run, steps=args.steps, progress=False)

    pipeline = A.Compose([
        SyntheticReplace(args.run, p=args.p, pool_size=32),  # uint8 in, uint8 (0..16) out
        A.ToFloat(max_value=16),  # digits are 0..16
        A.Affine(translate_px=(-1, 1), rotate=(-10, 10), p=0.5),
        A.GaussNoise(std_range=(0.02, 0.05), p=0.3),
        A.Normalize(mean=0.5, std=0.5, max_pixel_value=1.0),
    ], seed=0)
    pipeline = A.from_dict(A.to_dict(pipeline))  # serialisable: stores the generator's path

    data = load_data("digits:test")
    originals, outputs, labels = [], [], []
    for i in range(20):
        image, label = data[i]
        out = pipeline(image=image, label=label)["image"]
        originals.append(torch.from_numpy(image.astype(np.float32) / 16)[None])
        outputs.append(torch.from_numpy(out * 0.5 + 0.5).reshape(1, *image.shape))
        labels.append(label)
    save_grid(torch.stack(originals + outputs).clamp(0, 1), 20, args.out)
    print(json.dumps({"out": args.out, "labels": labels, "output_dtype": str(out.dtype),
                      "output_range": [float(min(o.min() for o in outputs)), float(max(o.max() for o in outputs))]}))


if __name__ == "__main__":
    main()
