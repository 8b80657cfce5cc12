"""Real-only vs real + SyntheticDataset, with 10% of the digits training data.

    python examples/wrap_dataset.py [--fraction 0.1] [--ratio 1.0] [--seed 0]

Fits a conditional DCGAN on the scarce split only, wraps the split in a SyntheticDataset (same
transform for real and synthetic items, fresh synthetic samples every epoch), trains the same
small CNN for the same number of steps on each, and prints both test accuracies as JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from _digits import fit_generator, scarce_digits, to_tensor, train_and_test

from synthaug import SyntheticDataset


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--fraction", type=float, default=0.1)
    p.add_argument("--ratio", type=float, default=1.0, help="synthetic items per real item")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--gen-steps", type=int, default=3000)
    p.add_argument("--gen-width", type=int, default=64)
    p.add_argument("--clf-steps", type=int, default=600)
    args = p.parse_args()

    small, test = scarce_digits(args.fraction, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        sampler = fit_generator(small, Path(tmp) / "run", args.gen_steps, args.seed, args.gen_width)
        real_only = train_and_test(_Transformed(small), test, args.clf_steps, args.seed)
        mixed = SyntheticDataset(small, sampler, ratio=args.ratio, transform=to_tensor, seed=args.seed)
        with_synthetic = train_and_test(mixed, test, args.clf_steps, args.seed)
    print(json.dumps({"real_images": len(small), "synthetic_images": mixed.num_synthetic,
                      "real_only_accuracy": real_only, "with_synthetic_accuracy": with_synthetic}))


class _Transformed:
    """The real split through the same transform, for the real-only baseline."""

    def __init__(self, data):
        self.data = data

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        image, label = self.data[i]
        return to_tensor(image), label


if __name__ == "__main__":
    main()
