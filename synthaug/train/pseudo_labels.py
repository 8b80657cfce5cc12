"""Pseudo-labels: the unlabelled images a classifier trained on the labels is confident about.

``fit(..., unlabeled=...)`` labels the unlabelled images before training the generator: a small
CNN is trained on the labelled training images (with classical augmentation, seeded), and every
unlabelled image whose predicted class has probability ``>= threshold`` joins the labelled set
with that class (Lee 2013; the role the semi-supervised GAN's auxiliary classifier plays in
Salimans et al. 2016). The generator's class-conditional term then learns from far more than the
few labels, which is what lets its samples carry information the labelled images alone lack.
The others stay unlabelled and still reach the family's unlabelled term. What was done is
visible: the card's ``training["pseudo_labels"]`` holds the threshold, how many images got each
class and at what mean confidence, and fit logs one line with the totals.

Example:
    >>> import torch
    >>> from synthaug.data import load_data
    >>> from synthaug.data.unlabeled import load_unlabeled
    >>> labelled = load_data("digits:train").subset(torch.arange(0, 1347, 9))
    >>> pool = load_unlabeled("digits:test", (1, 8, 8))
    >>> found = pseudo_label(labelled, pool, threshold=0.9, seed=0, steps=100)
    >>> len(found.indices) == len(found.labels) == len(found.confidence), found.threshold
    (True, 0.9)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..data import ImageData
from ..data.unlabeled import UnlabeledImages
from ..errors import SynthaugError
from ..metrics.classifier import fit_steps
from ..metrics.views import ClassicalAugment
from ..validation import is_real

__all__ = ["DEFAULT_THRESHOLD", "LABELLER_STEPS", "UNSET", "check_threshold", "pseudo_label", "PseudoLabels"]

#: Default confidence a pseudo-label needs (``fit --pseudo-labels``). Not tuned: measured in
#: benchmarks/usefulness.py, with 5 or 10 labels per class of digits it labelled 77-85% of the
#: unlabelled pool, 98.8-99.6% of them correctly.
DEFAULT_THRESHOLD = 0.9
#: Optimiser steps of the labelling classifier (batch 64), as ``synthaug eval``'s gain arms.
LABELLER_STEPS = 400


@dataclass
class PseudoLabels:
    """Which unlabelled images were labelled (``indices`` into the pool), as what, how surely."""

    indices: torch.Tensor
    labels: torch.Tensor
    confidence: torch.Tensor
    threshold: float

    def summary(self, class_names: list[str], pool_size: int) -> dict[str, Any]:
        """The card's record: counts and mean confidence per class."""
        per_class, mean_conf = {}, {}
        for c, name in enumerate(class_names):
            chosen = self.labels == c
            per_class[name] = int(chosen.sum())
            if chosen.any():
                mean_conf[name] = round(float(self.confidence[chosen].mean()), 4)
        return {"threshold": self.threshold, "labelled": len(self.indices), "pool": pool_size,
                "per_class": per_class, "mean_confidence": mean_conf,
                "labeller": f"small_cnn, {LABELLER_STEPS} steps, classical affine augmentation"}


#: What ``fit(pseudo_labels=...)`` gets when the caller says nothing: :data:`DEFAULT_THRESHOLD`.
#: A name rather than the number, so that ``fit`` can tell "not given" (which a resumed run or a
#: fit without unlabelled images accepts) from a value the caller chose.
UNSET = "default"


def check_threshold(threshold: Any) -> float | None:
    """``None``/``0`` (off) or a probability in (0, 1]; anything else is a one-line error.

    Example:
        >>> check_threshold(UNSET), check_threshold(0), check_threshold(0.5)
        (0.9, None, 0.5)
    """
    if isinstance(threshold, str) and threshold == UNSET:
        return DEFAULT_THRESHOLD
    if threshold is None:
        return None
    if not is_real(threshold) or not 0.0 <= threshold <= 1.0:
        raise SynthaugError(f"pseudo_labels: expected a confidence threshold in [0, 1] (0 or None: off), "
                            f"got {threshold!r}")
    return float(threshold) or None


def pseudo_label(labelled: ImageData, pool: UnlabeledImages, threshold: float, seed: int,
                 steps: int = LABELLER_STEPS) -> PseudoLabels:
    """Label the images of ``pool`` a classifier trained on ``labelled`` predicts with
    probability ``>= threshold``. Seeded apart from everything else: the same inputs give the
    same labels, and torch's global RNG is left alone."""
    model = fit_steps(labelled.as_float(), labelled.labels, labelled.num_classes, steps, seed=seed,
                      batch_hook=ClassicalAugment(seed=seed))
    images = pool.as_float()
    with torch.no_grad():
        probs = torch.cat([torch.softmax(model(images[i:i + 512]), 1) for i in range(0, len(images), 512)])
    confidence, labels = probs.max(1)
    chosen = (confidence >= threshold).nonzero().flatten()
    return PseudoLabels(chosen, labels[chosen], confidence[chosen], float(threshold))
