"""What augmentation costs: DataLoader throughput and training-step overhead, side by side.

    python benchmarks/augment_speed.py [--repeats 5]

1. DataLoader items/s over digits:train (HW uint8 arrays through a to-tensor transform, batch
   64): real-only vs SyntheticDataset with 50% synthetic items (ratio=1.0, default dcgan
   sampler; each epoch's set_epoch pool generation counted), at num_workers 0 and 2.
2. Training-step time of the small CNN at batch 256 with and without SyntheticMix(p=0.5)
   (default dcgan sampler on the same device, on torch and on ONNX Runtime), interleaved in
   one run.

Untrained generator weights: speed does not depend on them. Medians over --repeats. Writes
benchmarks/results/augment_speed.json and .md.
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

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from _digits import Transformed, to_tensor  # noqa: E402

from exporters.onnx import export
from synthaug import OnnxSampler, Sampler, SyntheticDataset, SyntheticMix, TorchSampler
from synthaug.card import GeneratorCard
from synthaug.data import load_data
from synthaug.metrics import SmallCNN
from synthaug.models import create_generator
from synthaug.models.widths import default_width

RESULTS = Path(__file__).parent / "results"


def default_sampler() -> TorchSampler:
    torch.manual_seed(0)
    g = create_generator("dcgan", None, (1, 8, 8), 10).eval()
    card = GeneratorCard("dcgan", {}, [1, 8, 8], 10, [str(i) for i in range(10)], g.noise_spec(),
                         {"range": [0, 1], "pixel_max": 16})
    return TorchSampler(g, card)


def epoch_rate(dataset, workers: int, epochs: int) -> float:
    return statistics.median(epoch_rates(dataset, workers, epochs))


def epoch_rates(dataset, workers: int, epochs: int) -> list[float]:
    loader = DataLoader(dataset, batch_size=64, shuffle=True, num_workers=workers,
                        persistent_workers=workers > 0, generator=torch.Generator().manual_seed(0))
    for _ in loader:  # warm-up: worker start-up is not throughput
        pass
    rates = []
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        n = sum(len(y) for _, y in loader)
        rates.append(n / (time.perf_counter() - t0))
    return rates


class PngFolder(torch.utils.data.Dataset):
    """A class-per-folder PNG dataset decoded on every access (what a real pipeline pays per
    item), its items raw HWC uint8 arrays for the transform; ``targets`` spares SyntheticDataset
    a pass over the files."""

    def __init__(self, root: Path, transform=None) -> None:
        self.classes = sorted(p.name for p in root.iterdir())
        self.files = [(f, i) for i, c in enumerate(self.classes) for f in sorted((root / c).glob("*.png"))]
        self.targets = [label for _, label in self.files]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int):
        from PIL import Image

        path, label = self.files[index]
        with Image.open(path) as im:
            image = np.asarray(im.convert("RGB"))
        return (self.transform(image=image)["image"] if self.transform else image), label


def write_png_folder(root: Path, per_class: int, size: int = 32) -> Path:
    """Photo-like RGB PNGs (smooth colour fields plus grain, so they compress like photographs,
    not like flat test images), ``per_class`` in each of 10 class folders."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(10):
        (root / str(c)).mkdir(parents=True)
        for i in range(per_class):
            coarse = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
            smooth = np.asarray(Image.fromarray(coarse).resize((size, size), Image.BICUBIC), dtype=np.int16)
            grain = rng.integers(-12, 13, smooth.shape)
            Image.fromarray(np.clip(smooth + grain, 0, 255).astype(np.uint8)).save(root / str(c) / f"{i}.png")
    return root


def png_pipeline_rows(repeats: int, per_class: int = 100) -> list[dict]:
    """Items/s of a PNG folder through an albumentations pipeline, real-only vs 50% synthetic
    (dcgan at 32x32 RGB, the default width), num_workers 0 and 2: median and range over ``repeats``
    epochs."""
    import albumentations as A
    from albumentations.pytorch import ToTensorV2

    torch.manual_seed(0)
    # The generator a default fit on this folder now makes: width 32 at 32x32 (default_width).
    config = {"g_width": default_width(32)}
    g = create_generator("dcgan", config, (3, 32, 32), 10).eval()
    card = GeneratorCard("dcgan", config, [3, 32, 32], 10, [str(i) for i in range(10)], g.noise_spec(),
                         {"range": [0, 1], "pixel_max": 255})
    sampler = TorchSampler(g, card)
    transform = A.Compose([A.HorizontalFlip(p=0.5), A.Affine(rotate=(-10, 10), scale=(0.9, 1.1), p=1.0),
                           A.Normalize(), ToTensorV2()])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = write_png_folder(Path(tmp) / "photos", per_class)
        for workers in (0, 2):
            real = epoch_rates(PngFolder(root, transform), workers, repeats)
            mixed = epoch_rates(SyntheticDataset(PngFolder(root), sampler, ratio=1.0, transform=transform),
                                workers, repeats)
            # refresh_every=2: a pool serves two epochs, so its cost lands on every other epoch; the
            # rate is items over time across 2 whole cycles (4 epochs), not a median of epochs.
            reused = SyntheticDataset(PngFolder(root), sampler, ratio=1.0, transform=transform, refresh_every=2)
            reused_rate = 1 / statistics.mean(1 / r for r in epoch_rates(reused, workers, 4))
            rows.append({"workers": workers, "items": len(PngFolder(root)),
                         "real_items_per_s": statistics.median(real), "real_range": [min(real), max(real)],
                         "synthetic50_items_per_s": statistics.median(mixed), "synthetic50_range": [min(mixed),
                                                                                                     max(mixed)],
                         "ratio": statistics.median(mixed) / statistics.median(real),
                         "synthetic50_refresh2_items_per_s": reused_rate,
                         "ratio_refresh2": reused_rate / statistics.median(real)})
    return rows


def step_times(samplers: dict[str, Sampler], repeats: int, steps: int = 20) -> dict[str, float]:
    """Median ms per training step: plain, and with SyntheticMix(p=0.5) over each sampler."""
    torch.manual_seed(0)
    model = SmallCNN(1, 10)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    mixes = {"plain": None, **{name: SyntheticMix(s, p=0.5) for name, s in samplers.items()}}
    images, labels = torch.rand(256, 1, 8, 8), torch.randint(0, 10, (256,))

    def step(mix) -> None:
        x, y = mix(images, labels) if mix is not None else (images, labels)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for mix in mixes.values():  # warm-up
        for _ in range(3):
            step(mix)
    times = {name: [] for name in mixes}
    for _ in range(repeats):
        for name, mix in mixes.items():  # interleaved, so drift hits every variant alike
            t0 = time.perf_counter()
            for _ in range(steps):
                step(mix)
            times[name].append((time.perf_counter() - t0) / steps)
    return {name: statistics.median(t) * 1e3 for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    sampler = default_sampler()
    data = load_data("digits:train")

    loader_rows = []
    for workers in (0, 2):
        real = epoch_rate(Transformed(data), workers, args.repeats)
        mixed = epoch_rate(SyntheticDataset(data, sampler, ratio=1.0, transform=to_tensor), workers, args.repeats)
        loader_rows.append({"workers": workers, "real_items_per_s": real, "synthetic50_items_per_s": mixed,
                            "ratio": mixed / real})
    png_rows = png_pipeline_rows(args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = export((sampler.module, sampler.card), Path(tmp) / "dcgan.onnx").path
        ms = step_times({"torch": sampler, "onnxruntime": OnnxSampler(str(onnx_path))}, args.repeats)
    step = {"plain_ms": ms["plain"], "mix_torch_ms": ms["torch"], "mix_onnxruntime_ms": ms["onnxruntime"],
            "overhead_torch": ms["torch"] / ms["plain"] - 1, "overhead_onnxruntime": ms["onnxruntime"] / ms["plain"] - 1}

    result = {"benchmark": "augment_speed", "command": "python benchmarks/augment_speed.py",
              "machine": {"threads": torch.get_num_threads(), "platform": platform.platform(),
                          "torch": torch.__version__},
              "dataloader": loader_rows, "dataloader_png_albumentations": png_rows, "train_step_batch256": step}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "augment_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    md = ["| DataLoader (digits:train, batch 64) | real-only items/s | 50% synthetic items/s | ratio |",
          "|---|---|---|---|"]
    md += [f"| num_workers={r['workers']} | {r['real_items_per_s']:,.0f} | {r['synthetic50_items_per_s']:,.0f} | "
           f"{r['ratio']:.2f}x |" for r in loader_rows]
    md += ["", "| DataLoader (1,000 RGB 32x32 PNGs decoded per item + albumentations flip/affine/normalize, batch 64) "
           "| real-only items/s (range) | 50% synthetic items/s (range) | ratio | 50% synthetic, refresh_every=2 "
           "(4 epochs) | ratio |", "|---|---|---|---|---|---|"]
    md += [f"| num_workers={r['workers']} | {r['real_items_per_s']:,.0f} ({r['real_range'][0]:,.0f}–"
           f"{r['real_range'][1]:,.0f}) | {r['synthetic50_items_per_s']:,.0f} ({r['synthetic50_range'][0]:,.0f}–"
           f"{r['synthetic50_range'][1]:,.0f}) | {r['ratio']:.2f}x | {r['synthetic50_refresh2_items_per_s']:,.0f} | "
           f"{r['ratio_refresh2']:.2f}x |" for r in png_rows]
    md += ["", f"| small CNN train step, batch 256, CPU ({torch.get_num_threads()} threads) | ms per step | overhead |",
           "|---|---|---|",
           f"| without mix | {step['plain_ms']:.1f} | |",
           f"| SyntheticMix(p=0.5), dcgan on torch | {step['mix_torch_ms']:.1f} | {step['overhead_torch']:+.1%} |",
           f"| SyntheticMix(p=0.5), dcgan on ONNX Runtime | {step['mix_onnxruntime_ms']:.1f} | "
           f"{step['overhead_onnxruntime']:+.1%} |"]
    (RESULTS / "augment_speed.md").write_text("\n".join(md) + "\n")
    print(json.dumps({"dataloader_ratios": [r["ratio"] for r in loader_rows],
                      "png_pipeline_ratios": [r["ratio"] for r in png_rows],
                      "png_pipeline_ratios_refresh2": [r["ratio_refresh2"] for r in png_rows],
                      "mix_overhead_torch": step["overhead_torch"], "mix_overhead_onnxruntime": step["overhead_onnxruntime"]}))


if __name__ == "__main__":
    main()
