"""A few labelled images and many unlabelled ones: the two-line recipe against real-only training.

    python examples/few_labels.py [--per-class 10] [--model dcgan] [--seed 0] [--cache-dir DIR]

Takes ``--per-class`` labelled digits of each class from digits:train and treats the rest of
digits:train as unlabelled. The recipe is one line: ``SyntheticDataset(labelled,
generator=MODEL, unlabeled=pool)`` fits a generator on first use (the labels, the confident
pseudo-labels and the unlabelled images; progress on stderr), caches it under
``~/.cache/synthaug`` (or ``--cache-dir``) and mixes its samples in with the default dose.
The same small CNN then trains for the same number of steps, with the same random-affine
augmentation, on the real images alone and on the mix; both test results (digits:test) are
printed as JSON.
"""

from __future__ import annotations

import argparse
import json

import torch
from _digits import Transformed, add_recipe_args, to_tensor, train_and_test

from synthaug import SyntheticDataset
from synthaug.data import load_data, per_class_subset
from synthaug.metrics.views import ClassicalAugment


def few_labels(per_class: int, seed: int):
    """``per_class`` labelled images of each class of digits:train (by seed), and the rest unlabelled."""
    train = load_data("digits:train")
    chosen = per_class_subset(train.labels, [per_class] * train.num_classes, seed)
    labelled = torch.zeros(len(train), dtype=torch.bool)
    labelled[chosen] = True
    pool = [train[i][0] for i in (~labelled).nonzero().flatten().tolist()]  # images only: no labels
    return train.subset(chosen), pool


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--per-class", type=int, default=10, help="labelled images per class")
    add_recipe_args(p)
    args = p.parse_args()

    labelled, pool = few_labels(args.per_class, args.seed)
    test = load_data("digits:test")
    # The recipe: one line, the generator fitted on first use and reused from the cache after.
    mixed = SyntheticDataset(labelled, generator=args.model, unlabeled=pool, transform=to_tensor, seed=args.seed,
                             fit_steps=args.gen_steps, cache_dir=args.cache_dir)
    augment = ClassicalAugment(seed=args.seed)  # what a practitioner already does, in both arms
    real_only = train_and_test(Transformed(labelled), test, args.clf_steps, args.seed, batch_hook=augment)
    augment = ClassicalAugment(seed=args.seed)
    with_synthetic = train_and_test(mixed, test, args.clf_steps, args.seed, batch_hook=augment)
    print(json.dumps({"labelled_images": len(labelled), "unlabelled_images": len(pool),
                      "synthetic_images": mixed.num_synthetic, "model": args.model,
                      # the recipe measured itself on validation splits of the labelled images first
                      "dose_check": {"used": mixed.dose_check["use"], "gain": mixed.dose_check["gain"]["mean"]},
                      "real_only_accuracy": real_only, "with_synthetic_accuracy": with_synthetic}))


if __name__ == "__main__":
    main()
