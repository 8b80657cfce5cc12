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

from _digits import Transformed, add_common_args, fit_generator, scarce_digits, to_tensor, train_and_test

from synthaug import SyntheticDataset


def main() -> None:
    p = argparse.ArgumentParser()
    add_common_args(p)
    p.add_argument("--ratio", type=float, default=1.0, help="synthetic items per real item")
    args = p.parse_args()

    small, test = scarce_digits(args.fraction, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        sampler = fit_generator(small, Path(tmp) / "run", args.gen_steps, args.seed, args.gen_width)
        real_only = train_and_test(Transformed(small), test, args.clf_steps, args.seed)
        mixed = SyntheticDataset(small, sampler, ratio=args.ratio, transform=to_tensor, seed=args.seed)
        with_synthetic = train_and_test(mixed, test, args.clf_steps, args.seed)
    print(json.dumps({"real_images": len(small), "synthetic_images": mixed.num_synthetic,
                      "real_only_accuracy": real_only, "with_synthetic_accuracy": with_synthetic}))


if __name__ == "__main__":
    main()
