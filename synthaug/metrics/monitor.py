"""The cheap quality metrics ``fit --eval-every N`` logs while training.

FID, KID (mean), precision and recall of a fixed set of generated images against the real
training images, in the feature space of a :class:`~synthaug.metrics.SmallCNN` trained once on
those images at the start of the fit (the same network and metrics as ``synthaug eval``, with
fewer training steps and samples: on digits one measurement costs 0.1-0.3 s on one CPU core).

Nothing here draws from torch's global RNG or from the fit's training generator: the feature
network trains under its own seed (:func:`~synthaug.metrics.classifier.fit_classifier` forks the
global RNG), the real subset and KID's subsets are seeded, and the generated images come from
noise the caller fixed. So measuring changes nothing about the weights a fit produces.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits  # a dependency of scikit-learn, which synthaug requires

from ..data import ImageData, stratified_split
from ..data.allocation import synthetic_counts
from .classifier import SmallCNN
from ..progress import progress_bar
from .features import (FeatureSpace, read_cached_classifier, reference_classifier, small_cnn_space,
                       write_cached_classifier)
from .quality import quality_metrics

__all__ = ["CHEAP_METRICS", "EVAL_SAMPLES", "FEATURE_STEPS", "KID_SUBSETS", "MAX_REAL", "feature_network",
           "QualityMonitor", "write_feature_network"]

#: The columns ``fit`` adds to ``log.csv`` at evaluation steps, and to the card's ``metrics``.
CHEAP_METRICS = ("fid", "kid", "precision", "recall")
#: Optimiser steps of the feature network (batch 64): 2.5-5 s on digits on one CPU core, and
#: 99.8% accuracy on digits:test when trained on digits:train (100 steps: 99.1%).
FEATURE_STEPS = 200
#: Generated images per measurement, shared among the classes as the training images are.
EVAL_SAMPLES = 300
#: Real images to compare with, at most (a stratified subset): k-NN balls cost N x N distances.
MAX_REAL = 2000
KID_SUBSETS = 50


def feature_network(train: ImageData, seed: int, cached: Path | None = None,
                    progress: bool = False) -> tuple[SmallCNN, bool]:
    """The feature network for ``train``: read from ``cached`` when that file holds the one for
    this data and seed, else trained (with a progress bar on stderr if ``progress``). Returns it
    and whether it was read."""
    if cached is not None and cached.is_file():
        model = read_cached_classifier(cached, train, FEATURE_STEPS, seed)
        if model is not None:
            return model, True
    with progress_bar(FEATURE_STEPS, "feature network", progress) as bar:
        def tick(images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            bar.update(1)
            return images, labels

        model, _ = reference_classifier(train, FEATURE_STEPS, seed, batch_hook=tick)
    return model, False


def write_feature_network(path: Path, model: SmallCNN, train: ImageData, seed: int) -> None:
    """Cache ``model`` at ``path`` (atomically) for :func:`feature_network` to read back."""
    write_cached_classifier(path, model, train, FEATURE_STEPS, seed)


@dataclass
class QualityMonitor:
    """``monitor.measure(images)`` -> the :data:`CHEAP_METRICS` of images generated for
    ``monitor.labels``."""

    space: FeatureSpace
    real_features: np.ndarray
    labels: torch.Tensor
    seed: int

    @classmethod
    def create(cls, train: ImageData, model: SmallCNN, seed: int, samples: int | None = None) -> QualityMonitor:
        """Features of (at most :data:`MAX_REAL` of) the real ``train`` images, and the labels of
        ``samples`` (default :data:`EVAL_SAMPLES`) generated images in proportion to its classes."""
        space = small_cnn_space(model, {"steps": FEATURE_STEPS, "seed": seed})
        real = train
        if len(real) > MAX_REAL:
            real = real.subset(stratified_split(real.labels, MAX_REAL / len(real), seed)[1])
        samples = EVAL_SAMPLES if samples is None else samples
        counts = synthetic_counts(torch.bincount(train.labels, minlength=train.num_classes),
                                  ratio=min(samples / len(train), 100.0), per_class=None, classes=None, balance=False,
                                  class_names=train.class_names)
        labels = torch.repeat_interleave(torch.arange(train.num_classes), counts)
        return cls(space, space(real.as_float()), labels, seed)

    @property
    def fid_needs(self) -> int:
        """FID is computed only with more real and generated images than feature dimensions."""
        return self.space.dim + 1

    def measure(self, images: torch.Tensor) -> dict[str, float | None]:
        """The metrics of generated ``images`` (float, [0, 1], any device), rounded to 6 places;
        ``None`` for one that cannot be computed (FID with too few images)."""
        fake = self.space(images.detach().float().clamp(0, 1).cpu())
        # KID multiplies many small matrices: with several BLAS threads beside torch's on a busy
        # CPU they mostly wait for each other (measured: 1.6 s instead of 0.03 s on 2 cores).
        with threadpool_limits(limits=1, user_api="blas"):
            values = quality_metrics(self.real_features, fake, kid_subsets=KID_SUBSETS, seed=self.seed)
        return {key: None if values[key] is None else round(values[key], 6) for key in CHEAP_METRICS}
