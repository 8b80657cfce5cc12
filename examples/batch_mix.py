"""Real-only vs SyntheticMix inside the training loop, with 10% of the digits training data.

    python examples/batch_mix.py [--fraction 0.1] [--p 1.0] [--mode append] [--seed 0]

The mix runs on each batch after the DataLoader (where the GPU would be): it adds (or
replaces) a fraction p of the rows with fresh samples of the same classes, normalised like the
real batch. Prints both test accuracies as JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from _digits import add_common_args, fit_generator, scarce_digits, train_and_test
from torch.utils.data import TensorDataset

from synthaug import SyntheticMix


def main() -> None:
    p = argparse.ArgumentParser()
    add_common_args(p)
    p.add_argument("--p", type=float, default=1.0, help="synthetic rows per batch row")
    p.add_argument("--mode", choices=("append", "replace"), default="append")
    args = p.parse_args()

    small, test = scarce_digits(args.fraction, args.seed)
    real = TensorDataset(small.as_float(), small.labels)  # batches of [B, 1, 8, 8] floats in [0, 1]
    with tempfile.TemporaryDirectory() as tmp:
        sampler = fit_generator(small, Path(tmp) / "run", args.gen_steps, args.seed, args.gen_width)
        mix = SyntheticMix(sampler, p=args.p, mode=args.mode, labels="same", seed=args.seed)
        real_only = train_and_test(real, test, args.clf_steps, args.seed)
        with_mix = train_and_test(real, test, args.clf_steps, args.seed, batch_hook=mix)
    print(json.dumps({"real_images": len(small), "p": args.p, "mode": args.mode,
                      "real_only_accuracy": real_only, "with_mix_accuracy": with_mix}))


if __name__ == "__main__":
    main()
