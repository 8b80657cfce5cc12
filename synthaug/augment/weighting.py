"""Per-row loss weights and soft targets that treat synthetic rows differently from real ones.

The synthetic rows come marked by ``SyntheticDataset(return_is_synthetic=True)`` (collated by the
DataLoader into a bool tensor) or by ``SyntheticMix(return_mask=True)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from ..errors import SynthaugError
from .schedule import check_int, check_number


def synthetic_weight(is_synthetic: torch.Tensor | Sequence[bool], w: float,
                     normalize: bool = False) -> torch.Tensor:
    """Per-row loss weights: 1.0 for real rows, ``w`` for synthetic ones.

    One line in the training loop (``is_syn`` on the loss's device, like the batch)::

        loss = (F.cross_entropy(logits, y, reduction="none") * synthaug.synthetic_weight(is_syn, 0.5)).mean()

    By default the weights are plain: a synthetic row counts ``w`` times as much as a real one and
    the mean stays over all ``B`` rows, so the loss shrinks as the synthetic share grows (at half
    synthetic and ``w=0.5``, 0.75 of the unweighted loss): the same as lowering the learning rate
    on those batches. With ``normalize=True`` the weights are divided by their mean, so
    ``(losses * weights).mean()`` is the weighted mean ``sum(w_i * l_i) / sum(w_i)``: the loss
    keeps the scale of real-only training whatever the synthetic share (a batch whose weights are
    all 0 gets all-0 weights).

    Args:
        is_synthetic: ``[B]`` bool tensor (or a list of bools) marking the synthetic rows.
        w: weight of a synthetic row, a number >= 0 (1 weighs them like real rows, 0 ignores them).
        normalize: divide the weights by their mean (see above).

    Returns:
        ``[B]`` float32 weights on ``is_synthetic``'s device (the CPU for a list). No host sync.

    Example:
        >>> synthetic_weight(torch.tensor([False, True, True, False]), 0.5)
        tensor([1.0000, 0.5000, 0.5000, 1.0000])
        >>> synthetic_weight([False, True, True, False], 0.5, normalize=True)
        tensor([1.3333, 0.6667, 0.6667, 1.3333])
    """
    mask = _as_mask(is_synthetic)
    w = check_number(w, "w", high=math.inf)
    weights = torch.ones(mask.shape, dtype=torch.float32, device=mask.device).masked_fill_(mask, w)
    if normalize:
        # clamp_min: an all-zero batch (w=0, every row synthetic) gives 0 / tiny = 0, not nan;
        # done on the device, so there is no host sync to test for it.
        weights = weights / weights.mean().clamp_min(torch.finfo(weights.dtype).tiny)
    return weights


def soft_synthetic_labels(labels: torch.Tensor, is_synthetic: torch.Tensor | Sequence[bool], num_classes: int,
                          smoothing: float) -> torch.Tensor:
    """Soft targets with label smoothing on the synthetic rows only, for ``F.cross_entropy``.

    A real row is its one-hot label; a synthetic row is smoothed as ``F.cross_entropy(...,
    label_smoothing=smoothing)`` would: ``1 - smoothing + smoothing / K`` on its class and
    ``smoothing / K`` elsewhere (a synthetic sample's class is less certain than a real one's)::

        loss = F.cross_entropy(logits, synthaug.soft_synthetic_labels(y, is_syn, num_classes, 0.1))

    Args:
        labels: ``[B]`` integer classes, or ``[B, K]`` soft labels (e.g. from CutMix/MixUp or
            ``SyntheticMix``): real rows are then kept as they are, synthetic rows smoothed.
        is_synthetic: ``[B]`` bool tensor (or a list of bools) marking the synthetic rows.
        num_classes: ``K``.
        smoothing: in [0, 1); 0 gives plain one-hot rows everywhere.

    Returns:
        ``[B, K]`` targets on ``labels``' device: float32 for integer labels, the soft labels'
        dtype otherwise. Every row sums to 1 (when the soft labels' rows do).

    Example:
        >>> soft_synthetic_labels(torch.tensor([0, 2]), [False, True], num_classes=3, smoothing=0.3)
        tensor([[1.0000, 0.0000, 0.0000],
                [0.1000, 0.1000, 0.8000]])
    """
    num_classes = check_int(num_classes, "num_classes")
    smoothing = check_number(smoothing, "smoothing", high=1.0, high_open=True)
    mask = _as_mask(is_synthetic).to(labels.device if isinstance(labels, torch.Tensor) else "cpu")
    targets = _as_targets(labels, num_classes, len(mask))
    smoothed = targets * (1.0 - smoothing) + smoothing / num_classes
    return torch.where(mask[:, None], smoothed, targets)


def _as_targets(labels: torch.Tensor, num_classes: int, rows: int) -> torch.Tensor:
    """``labels`` as ``[B, K]`` floating targets (one-hot for integer labels)."""
    if isinstance(labels, torch.Tensor) and labels.ndim == 2 and labels.dtype.is_floating_point \
            and labels.shape == (rows, num_classes):
        return labels
    if not (isinstance(labels, torch.Tensor) and labels.ndim == 1 and labels.shape[0] == rows
            and not labels.dtype.is_floating_point and not labels.dtype.is_complex and labels.dtype != torch.bool):
        got = f"{labels.dtype} of shape {tuple(labels.shape)}" if isinstance(labels, torch.Tensor) \
            else type(labels).__name__
        raise SynthaugError(f"labels: expected int [{rows}] or float soft [{rows}, {num_classes}] to match "
                            f"is_synthetic, got {got}")
    if labels.device.type == "cpu" and labels.numel():
        # Free on the CPU; on an accelerator this would wait for the device, so it is skipped.
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= num_classes:
            raise SynthaugError(f"labels: expected classes in 0..{num_classes - 1}, got {low if low < 0 else high}")
    # scatter rather than F.one_hot: one_hot checks the range on the device, a host sync on a GPU.
    return torch.zeros(rows, num_classes, dtype=torch.float32, device=labels.device).scatter_(
        1, labels.to(torch.int64).unsqueeze(1), 1.0)


def _as_mask(is_synthetic: torch.Tensor | Sequence[bool]) -> torch.Tensor:
    """``is_synthetic`` as a 1-D bool tensor (a list of bools goes to the CPU)."""
    if isinstance(is_synthetic, (list, tuple)) and all(isinstance(v, (bool, np.bool_)) for v in is_synthetic):
        return torch.tensor([bool(v) for v in is_synthetic], dtype=torch.bool)
    if isinstance(is_synthetic, np.ndarray) and is_synthetic.dtype == np.bool_:
        is_synthetic = torch.from_numpy(is_synthetic)
    if isinstance(is_synthetic, torch.Tensor) and is_synthetic.dtype == torch.bool and is_synthetic.ndim == 1:
        return is_synthetic
    got = f"{is_synthetic.dtype} of shape {tuple(is_synthetic.shape)}" \
        if isinstance(is_synthetic, (torch.Tensor, np.ndarray)) else type(is_synthetic).__name__
    raise SynthaugError(f"is_synthetic: expected a 1-D bool tensor or a list of bools (the synthetic rows), got {got}")
