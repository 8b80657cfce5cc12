"""Memorisation: are generated samples near-copies of training images?

For each generated sample, the distance to its nearest real training image, divided by the
typical distance from a *held-out* real image to its nearest training image (the median): a
generator that generalises makes samples about as far from the training set as fresh real
images are (relative distance around 1); one that memorises makes samples much closer. A sample
closer than ``threshold`` (a third of that typical distance, by default) counts as a near-copy,
and the same share among the held-out images is reported beside it as the base rate (duplicates
in the data itself).

Distances are taken in pixel space: a near-copy is a pixel-level notion, while in a
classifier's feature space all images of one class lie close together by design.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..metrics.quality import nearest

__all__ = ["NEAR_COPY_THRESHOLD", "memorisation"]

#: Relative distance below which a generated sample counts as a near-copy.
NEAR_COPY_THRESHOLD = 1 / 3


def memorisation(generated: torch.Tensor, generated_labels: torch.Tensor, train_images: torch.Tensor,
                 heldout_images: torch.Tensor, class_names: Sequence[str], threshold: float = NEAR_COPY_THRESHOLD,
                 pairs: int = 8) -> dict[str, Any]:
    """Nearest-training-image distances of ``generated`` relative to those of ``heldout_images``.

    All images are float ``[N, C, H, W]`` in [0, 1] of one shape. Returns the summary and the
    ``pairs`` closest (generated index, training index) pairs, closest first.

    Example:
        >>> train = torch.rand(50, 1, 4, 4)
        >>> copies = memorisation(train[:10], torch.zeros(10, dtype=torch.int64), train, torch.rand(20, 1, 4, 4), ["a"])
        >>> copies["near_copy_share"], copies["closest_pairs"][0]["relative_distance"]
        (1.0, 0.0)
    """
    d_gen, nearest_train = nearest(_flat(generated), _flat(train_images))
    d_ref, _ = nearest(_flat(heldout_images), _flat(train_images))
    scale = float(np.median(d_ref)) if len(d_ref) else float("nan")
    scale = scale if scale > 0 else float(np.mean(d_ref)) or 1.0  # a data set of duplicates: avoid /0
    rel_gen, rel_ref = d_gen / scale, d_ref / scale
    copies = rel_gen < threshold
    labels = generated_labels.cpu().numpy()
    order = np.argsort(rel_gen, kind="stable")[:pairs]
    return {
        "space": "pixels",
        "threshold": threshold,
        "heldout_median_distance": scale,
        "median_relative_distance": float(np.median(rel_gen)) if len(rel_gen) else None,
        "relative_distance_quantiles": {f"q{q:02d}": float(np.percentile(rel_gen, q)) for q in (1, 5, 25, 50)}
        if len(rel_gen) else {},
        "near_copy_share": float(copies.mean()) if len(copies) else None,
        "heldout_near_copy_share": float((rel_ref < threshold).mean()) if len(rel_ref) else None,
        "per_class_near_copy_share": {name: float(copies[labels == c].mean()) if (labels == c).any() else None
                                      for c, name in enumerate(class_names)},
        "n_generated": len(rel_gen), "n_train": len(train_images), "n_heldout": len(rel_ref),
        "closest_pairs": [{"generated": int(i), "train": int(nearest_train[i]), "class": class_names[labels[i]],
                           "relative_distance": float(rel_gen[i])} for i in order],
    }


def _flat(images: torch.Tensor) -> torch.Tensor:
    return images.detach().cpu().reshape(len(images), -1)
