"""Shared set-up of the augmentation examples: scarce digits, a generator fitted on them, and a
classifier trained for a fixed number of steps so that every variant gets the same compute."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
from torch.utils.data import DataLoader

import synthaug
from synthaug.data import ImageData, load_data, stratified_split
from synthaug.metrics import accuracy, fit_classifier


def scarce_digits(fraction: float, seed: int) -> tuple[ImageData, ImageData]:
    """``fraction`` of digits:train (stratified, by seed) and the whole of digits:test."""
    train, test = load_data("digits:train"), load_data("digits:test")
    _, part = stratified_split(train.labels, fraction, seed)
    return train.subset(part), test


def fit_generator(data: ImageData, out: Path, steps: int, seed: int, width: int = 64) -> synthaug.Sampler:
    run = synthaug.fit(data, out=out, steps=steps, seed=seed, force=True, progress=False,
                       config={"g_width": width, "d_width": width})
    return run.sampler()


def to_tensor(image) -> torch.Tensor:
    """An HW uint8 digit (0..16) as a float [1, H, W] tensor in [0, 1]; real and synthetic alike."""
    return torch.as_tensor(image, dtype=torch.float32)[None] / 16


class Transformed(torch.utils.data.Dataset):
    """A dataset through ``to_tensor``: the real-only baseline sees exactly what the mix sees."""

    def __init__(self, data) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i):
        image, label = self.data[i]
        return to_tensor(image), label


def add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fraction", type=float, default=0.1, help="share of digits:train to use")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gen-steps", type=int, default=3000, help="generator training steps")
    parser.add_argument("--gen-width", type=int, default=64, help="generator width")
    parser.add_argument("--clf-steps", type=int, default=600, help="classifier steps, the same for every variant")


def train_and_test(dataset, test: ImageData, steps: int, seed: int, batch_hook=None,
                   batch_size: int = 64) -> float:
    """Train the small CNN for ``steps`` optimizer steps on ``dataset`` and return test accuracy."""
    g = torch.Generator().manual_seed(seed)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=len(dataset) > batch_size,
                        generator=g)
    per_epoch = max(1, len(loader))

    def batches(epoch):
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)  # fresh synthetic samples every epoch
        return iter(loader)

    model = fit_classifier(batches, per_epoch, 1, test.num_classes, epochs=math.ceil(steps / per_epoch),
                           seed=seed, batch_hook=batch_hook)
    return accuracy(model, test.as_float(), test.labels)


def add_recipe_args(parser: argparse.ArgumentParser) -> None:
    """Options of the recipe examples, whose generator is fitted on first use and cached."""
    parser.add_argument("--model", default="dcgan", help="generator family fitted on first use")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gen-steps", type=int, default=None, help="generator steps (default: fit's)")
    parser.add_argument("--clf-steps", type=int, default=400, help="classifier steps, the same for both arms")
    parser.add_argument("--cache-dir", default=None,
                        help="where fitted generators are kept (default ~/.cache/synthaug)")
