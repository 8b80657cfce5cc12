"""The ``synthaug eval`` command: :func:`add_eval_parser` registers it, :func:`run_eval` runs it.

stdout gets one JSON summary; the progress bar, warnings and errors go to stderr; everything
else is in the report directory.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import SynthaugError
from ..metrics.methods import FIXMATCH_MU
from .defaults import DEFAULT_DOSES, DEFAULT_REFERENCE_STEPS, DEFAULT_STEPS

__all__ = ["add_eval_parser", "parse_shares", "run_eval"]


def parse_shares(text: str, option: str) -> list[float]:
    """``"0,0.1,0.25"`` -> ``[0.0, 0.1, 0.25]``; range checks are :func:`evaluate`'s.

    Example:
        >>> parse_shares("0, 0.1,0.5", "--doses")
        [0.0, 0.1, 0.5]
    """
    values = []
    for token in (t.strip() for t in text.split(",")):
        try:
            values.append(float(token))
        except ValueError:
            raise SynthaugError(f"{option}: expected comma-separated numbers in [0, 1], got {token!r}") from None
    return values


def add_eval_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``eval`` to the ``synthaug`` command's subparsers."""
    p = subparsers.add_parser("eval", help="measure whether a generator's samples help a classifier on your data")
    p.add_argument("source", metavar="RUN", help="run directory, .safetensors or .onnx")
    p.add_argument("--data", required=True, help="real training data: digits:train, an image folder, an .npz")
    p.add_argument("--test", help="real test data (default: a stratified 25%% of --data, recorded in the report)")
    p.add_argument("--unlabeled", help="more real images the generator saw, checked for near-copies too: an image "
                   "folder or .npz like --data (labels ignored)")
    p.add_argument("--seeds", type=int, default=5, help="paired seeds per arm (default 5, at least 2)")
    p.add_argument("--doses", default=",".join(f"{d:g}" for d in DEFAULT_DOSES),
                   help="shares of each batch made synthetic, comma-separated (default 0,0.1,0.25,0.5)")
    p.add_argument("--fractions", default="1.0", help="shares of the training data to measure at (default 1.0)")
    p.add_argument("--classifier", default="small_cnn",
                   help="small_cnn, resnet, or module:function building an nn.Module from (channels, num_classes)")
    p.add_argument("--no-classical-augment", action="store_true",
                   help="no random affine augmentation in the baseline (nor in the synthetic arms)")
    p.add_argument("--feature-extractor", help="an .onnx file or module:attribute (an nn.Module, or a function "
                   "returning one) instead of the SmallCNN trained on --data")
    p.add_argument("--resize", action="store_true", help="convert the data to the generator's image shape")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                   help=f"optimiser steps of each classifier in the gain experiment (default {DEFAULT_STEPS})")
    p.add_argument("--reference-steps", type=int, default=DEFAULT_REFERENCE_STEPS,
                   help=f"steps of the feature network and the CAS classifiers (default {DEFAULT_REFERENCE_STEPS})")
    p.add_argument("--no-baselines", action="store_true", help="skip the practitioner's baselines (class-balanced "
                   "resampling, logit adjustment and balance=True on imbalanced labels; pseudo-labels and FixMatch "
                   "with --unlabeled), which otherwise run alone and with synthetic samples on top")
    p.add_argument("--fixmatch-mu", type=int, default=FIXMATCH_MU, metavar="MU",
                   help=f"FixMatch's unlabelled batch in multiples of the labelled one (default {FIXMATCH_MU})")
    p.add_argument("--seed", type=int, default=0, help="seed of the samples, the test split and the CAS classifiers")
    p.add_argument("--out", required=True, metavar="REPORT_DIR", help="directory for report.json/.md/.html")
    p.add_argument("--force", action="store_true", help="overwrite the report in a non-empty REPORT_DIR")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=run_eval)
    return p


def run_eval(args: argparse.Namespace) -> dict[str, Any]:
    from .pipeline import evaluate

    report = evaluate(args.source, args.data, args.test, unlabeled=args.unlabeled, seeds=args.seeds,
                      doses=parse_shares(args.doses, "--doses"), fractions=parse_shares(args.fractions, "--fractions"),
                      classifier=args.classifier, classical_augment=not args.no_classical_augment,
                      feature_extractor=args.feature_extractor, out=args.out, force=args.force, resize=args.resize,
                      steps=args.steps, reference_steps=args.reference_steps, seed=args.seed,
                      progress=not args.no_progress, baselines=not args.no_baselines, fixmatch_mu=args.fixmatch_mu)
    return report.summary()
