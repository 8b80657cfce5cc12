"""Per-row loss weights that count synthetic rows differently from real ones.

(Label smoothing on synthetic rows only was measured too, in benchmarks/usefulness.py, and left
out: it lowered validation accuracy against plain labels in every regime.)

The synthetic rows come marked by ``SyntheticDataset(return_is_synthetic=True)`` (collated by the
DataLoader into a bool tensor) or by ``SyntheticMix(return_mask=True)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from ..errors import SynthaugError
from ..validation import check_number

__all__ = ["synthetic_weight"]


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
