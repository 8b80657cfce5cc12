"""Rare classes: fill them up with synthetic samples (``balance=True``) and compare per class.

    python examples/long_tail.py [--rare 5,6,7,8,9] [--keep 0.1] [--model dcgan] [--seed 0]

Cuts the ``--rare`` classes of digits:train to ``--keep`` of their images (the others stay
whole), fits a generator on the long-tailed set on first use (cached, as in few_labels.py),
and trains the same small CNN for the same steps, with random-affine augmentation, on the real
images alone and on ``SyntheticDataset(real, generator=MODEL, balance=True)``, which tops every
class up to the largest one with synthetic samples, or, where its own check found class-balanced
resampling better, with repeated real images. Prints what it chose and the overall, balanced and
rare-class test accuracy (digits:test) of both as JSON.
"""

from __future__ import annotations

import argparse
import json
import math

import torch
from _digits import Transformed, add_recipe_args, to_tensor
from torch.utils.data import DataLoader

from synthaug import SyntheticDataset
from synthaug.augment.dose_check import fill
from synthaug.data import load_data, per_class_subset
from synthaug.metrics.views import ClassicalAugment
from synthaug.metrics import fit_classifier
from synthaug.metrics.classifier import balanced_accuracy, per_class_accuracy, predict


def long_tailed(rare: list[int], keep: float, seed: int):
    """digits:train with the ``rare`` classes cut to ``keep`` of their images (by seed)."""
    train = load_data("digits:train")
    counts = [max(1, round(keep * n)) if c in rare else n for c, n in enumerate(train.class_counts())]
    return train.subset(per_class_subset(train.labels, counts, seed))


def train_and_score(dataset, test, steps: int, seed: int, rare: list[int]) -> dict:
    g = torch.Generator().manual_seed(seed)
    loader = DataLoader(dataset, batch_size=64, shuffle=True, drop_last=True, generator=g)

    def batches(epoch):
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)  # fresh synthetic samples every epoch
        return iter(loader)

    model = fit_classifier(batches, len(loader), 1, test.num_classes, epochs=math.ceil(steps / len(loader)),
                           seed=seed, batch_hook=ClassicalAugment(seed=seed))
    preds = predict(model, test.as_float())
    per_class = per_class_accuracy(preds, test.labels, test.num_classes)
    return {"accuracy": (preds == test.labels).float().mean().item(),
            "balanced_accuracy": balanced_accuracy(preds, test.labels, test.num_classes),
            "rare_accuracy": sum(per_class[c] for c in rare) / len(rare)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rare", default="5,6,7,8,9", help="classes cut down")
    p.add_argument("--keep", type=float, default=0.1, help="share of each rare class kept")
    add_recipe_args(p)
    args = p.parse_args()

    rare = [int(c) for c in args.rare.split(",")]
    real, test = long_tailed(rare, args.keep, args.seed), load_data("digits:test")
    balanced = SyntheticDataset(real, generator=args.model, balance=True, transform=to_tensor, seed=args.seed,
                                fit_steps=args.gen_steps, cache_dir=args.cache_dir)
    check = balanced.dose_check  # the recipe measured itself on validation splits of `real` first
    repeated = torch.bincount(real.labels[balanced.repeated_real], minlength=real.num_classes)
    print(json.dumps({"class_counts": real.class_counts(), "synthetic_per_class": balanced.synthetic_counts.tolist(),
                      "repeated_per_class": repeated.tolist(),
                      "dose_check": {"used": check["use"], "fill": fill(check), "gain": check["gain"]["mean"]}
                      if check else None,
                      "real_only": train_and_score(Transformed(real), test, args.clf_steps, args.seed, rare),
                      "balanced": train_and_score(balanced, test, args.clf_steps, args.seed, rare)}))


if __name__ == "__main__":
    main()
