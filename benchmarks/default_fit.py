"""A default fit that finishes: ``synthaug fit FOLDER`` on ~1000 greyscale 32x32 images with the
size-dependent defaults, against the old default (3000 steps at full width 64), both judged by
``synthaug eval``'s CAS ratio on held-out images.

The folder: digits:train, 100 images per class (1000), and digits:test (450) as the test set,
both upscaled bilinearly from 8x8 to 32x32 and written as greyscale PNGs.

    python benchmarks/default_fit.py                 # fits both arms, then evaluates them
    python benchmarks/default_fit.py --work DIR      # reuses fits already finished in DIR

Fit time is the ``seconds`` the card records (the loop's own wall time); on a shared machine,
rerun the default arm alone for a clean figure. Writes benchmarks/results/default_fit.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from synthaug.atomic import atomic_write_text
from synthaug.data import load_data

RESULTS = Path(__file__).with_name("results")
ARMS = {
    "default": [],  # what a new user gets: width 32 and 1500 steps at 32x32 with < 2000 images
    "full_width_3000": ["--set", "g_width=64", "--set", "d_width=64", "--steps", "3000"],
}


def write_folder(source: str, out: Path, per_class: int | None) -> Path:
    from PIL import Image

    if out.is_dir():
        return out
    data = load_data(source)
    keep = []
    for c in range(data.num_classes):
        idx = (data.labels == c).nonzero().flatten().tolist()
        keep += idx[:per_class] if per_class else idx
    big = F.interpolate(data.as_float()[keep], size=32, mode="bilinear", align_corners=False).clamp(0, 1)
    tmp = out.with_name(out.name + ".tmp")
    for i, (img, label) in enumerate(zip(big, data.labels[keep])):
        folder = tmp / str(int(label))
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((img[0].numpy() * 255).round().astype(np.uint8), "L").save(folder / f"{i:04d}.png")
    tmp.rename(out)
    return out


def run(argv: list[str]) -> None:
    subprocess.run([sys.executable, "-m", "synthaug", *argv], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("default_fit_work"), help="folders, runs and reports")
    parser.add_argument("--seeds", type=int, default=2, help="paired seeds of each eval's gain part (CAS: one classifier)")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    train = write_folder("digits:train", args.work / "digits32_train", per_class=100)
    test = write_folder("digits:test", args.work / "digits32_test", per_class=None)
    rows = []
    for arm, extra in ARMS.items():
        out = args.work / arm
        if not (out / "card.json").is_file():
            run(["fit", str(train), "--out", str(out), "--no-progress", *extra])
        report = args.work / f"{arm}_report"
        if not (report / "report.json").is_file():
            run(["eval", str(out), "--data", str(train), "--test", str(test), "--seeds", str(args.seeds),
                 "--doses", "0.25", "--out", str(report), "--no-progress", "--force"])
        card = json.loads((out / "card.json").read_text())
        cas = json.loads((report / "report.json").read_text())["cas"]
        rows.append({"arm": arm, "config": card["config"], "steps": card["training"]["steps"],
                     "fit_seconds": card["training"]["seconds"], "cas": cas["cas"],
                     "real_accuracy": cas["real_accuracy"], "cas_ratio": cas["ratio"]})
        print(json.dumps(rows[-1]), flush=True)
    result = {"machine": f"{os.cpu_count()} CPU cores, torch {torch.__version__}", "train": str(train.name),
              "test": str(test.name), "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    atomic_write_text(RESULTS / "default_fit.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(RESULTS / "default_fit.md", to_markdown(result))


def to_markdown(result: dict) -> str:
    lines = ["| fit | width (G/D) | steps | fit time | CAS | real accuracy | CAS ratio |", "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        c = r["config"]
        lines.append(f"| {r['arm']} | {c['g_width']}/{c['d_width']} | {r['steps']} | {r['fit_seconds'] / 60:.1f} min | "
                     f"{r['cas']:.1%} | {r['real_accuracy']:.1%} | {r['cas_ratio']:.3f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
