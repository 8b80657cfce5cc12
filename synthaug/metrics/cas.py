"""Classification Accuracy Score (Ravuri & Vinyals 2019).

Train a classifier on generated images only, test it on real held-out images, and compare with
the same classifier trained on the real training images.
"""

from __future__ import annotations

import torch

from ..data import ImageData
from .classifier import accuracy, train_classifier


def classification_accuracy_score(sampler, real_train: ImageData, real_test: ImageData,
                                  seed: int = 0, epochs: int = 30, synthetic_factor: int = 1) -> dict:
    """CAS of ``sampler`` against real data; the synthetic set has the real training set's
    class counts (times ``synthetic_factor``).

    Returns ``{"cas": ..., "real_accuracy": ..., "ratio": ..., "synthetic_size": ...}``.
    """
    counts = torch.tensor(real_train.class_counts()) * synthetic_factor
    labels = torch.repeat_interleave(torch.arange(len(counts)), counts)
    images = sampler.sample(labels, seed=seed).cpu()
    test_x, test_y = real_test.as_float(), real_test.labels
    cas = accuracy(train_classifier(images, labels, len(counts), epochs=epochs, seed=seed), test_x, test_y)
    real = accuracy(train_classifier(real_train.as_float(), real_train.labels, len(counts), epochs=epochs,
                                     seed=seed), test_x, test_y)
    return {"cas": cas, "real_accuracy": real, "ratio": cas / real, "synthetic_size": len(labels)}
