"""Classification Accuracy Score (Ravuri & Vinyals 2019).

Train a classifier on generated images only, test it on real held-out images, and compare with
the same classifier trained on the real training images. The one CAS of the project: ``synthaug
eval`` reports it, the benchmarks tabulate it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..data import ImageData
from .classifier import SmallCNN, fit_steps, predict


def generate_images(sampler, labels: torch.Tensor, seed: int) -> torch.Tensor:
    """``sampler``'s images of ``labels`` (noise from ``seed``): float, on the CPU, in [0, 1]."""
    images = sampler.sample(labels, seed=seed).detach().float().cpu()
    return images.clamp(0, 1)


def classification_accuracy_score(sampler, train: ImageData, test: ImageData, *, steps: int, seed: int = 0,
                                  reference: nn.Module | None = None,
                                  model_factory: Callable[[int, int], nn.Module] = SmallCNN,
                                  tick: Callable | None = None) -> dict[str, Any]:
    """CAS of ``sampler``: ``model_factory``'s classifier trained on generated images only (one
    per training image, of its class; noise seed ``seed + 1``) for ``steps`` optimiser steps
    (:func:`~synthaug.metrics.classifier.fit_steps`, seed ``seed``), tested on the real ``test``
    images, beside the same classifier trained on the real ``train`` images (``reference`` when
    it is that classifier already). ``tick(images, labels)`` sees every training batch.

    Returns ``{"cas", "real_accuracy", "ratio" (None when real_accuracy is 0), "synthetic_size",
    "steps"}``.
    """
    labels = train.labels.clone()
    synthetic = generate_images(sampler, labels, seed + 1)
    test_x = test.as_float()
    cas_model = fit_steps(synthetic, labels, train.num_classes, steps, seed=seed, batch_hook=tick,
                          model_factory=model_factory)
    if reference is None:
        reference = fit_steps(train.as_float(), train.labels, train.num_classes, steps, seed=seed, batch_hook=tick,
                              model_factory=model_factory)
    cas = (predict(cas_model, test_x) == test.labels).float().mean().item()
    real = (predict(reference, test_x) == test.labels).float().mean().item()
    return {"cas": cas, "real_accuracy": real, "ratio": cas / real if real > 0 else None,
            "synthetic_size": len(labels), "steps": steps}


__all__ = ["classification_accuracy_score", "generate_images"]
