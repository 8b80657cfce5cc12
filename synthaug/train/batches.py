"""Which images each training step takes: a pure function of (seed, step), so a resumed run needs
no state to draw the same batches.

Example:
    >>> import torch
    >>> batches = EpochBatches(10, 4, seed=0)
    >>> batches.steps_per_epoch, len(batches(0)), torch.equal(batches(1), EpochBatches(10, 4, 0)(1))
    (2, 4, True)
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["ClassBalancedBatches", "EpochBatches"]


class EpochBatches:
    """The indices of step ``s``'s batch. Each epoch is a fresh permutation seeded by
    ``epoch_seed(epoch)`` (given an int ``seed``: ``seed * 1_000_003 + epoch``, the seed scheme 1
    runs were started with); a set smaller than the batch is repeated to fill it."""

    def __init__(self, n: int, batch_size: int, seed: int | Callable[[int], int]) -> None:
        self.n, self.batch_size = n, batch_size
        self.epoch_seed = seed if callable(seed) else (lambda epoch, base=seed: base * 1_000_003 + epoch)
        self.steps_per_epoch = max(1, n // batch_size)
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.int64)

    def __call__(self, step: int) -> torch.Tensor:
        epoch, i = divmod(step, self.steps_per_epoch)
        if self._epoch != epoch:
            self._perm = self._order(torch.Generator().manual_seed(self.epoch_seed(epoch)))
            self._epoch = epoch
        return self._perm[i * self.batch_size:(i + 1) * self.batch_size]

    def _order(self, g: torch.Generator) -> torch.Tensor:
        perm = torch.randperm(self.n, generator=g)
        return perm.repeat(-(-self.batch_size // self.n)) if self.n < self.batch_size else perm


class ClassBalancedBatches(EpochBatches):
    """Like :class:`EpochBatches`, but an epoch's ``steps_per_epoch * batch_size`` indices are
    drawn with replacement, image ``i`` of class ``c`` with probability proportional to
    ``n_c ** -balance``: ``balance=1`` gives every class the same share of the batches (a rare
    class of 5 images among classes of 300 gets 1/K of the class-term updates instead of 0.3%),
    ``balance=0.5`` goes half way on a log scale.

    Example:
        >>> batches = ClassBalancedBatches(torch.tensor([0] * 90 + [1] * 10), 50, seed=0, balance=1.0)
        >>> 0.3 < (batches(0) >= 90).float().mean().item() < 0.7
        True
    """

    def __init__(self, labels: torch.Tensor, batch_size: int, seed: int | Callable[[int], int],
                 balance: float) -> None:
        super().__init__(len(labels), batch_size, seed)
        counts = torch.bincount(labels).double()
        self.weights = counts[labels] ** -balance

    def _order(self, g: torch.Generator) -> torch.Tensor:
        return torch.multinomial(self.weights, self.steps_per_epoch * self.batch_size, replacement=True, generator=g)
