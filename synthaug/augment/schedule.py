"""Dose schedules: the synthetic share of a batch as a function of the training step.

``SyntheticMix(sampler, p=linear_schedule(0.8, 0.2, steps=5000))`` replaces many rows early and
fewer late; any callable ``step -> fraction`` works as ``p`` too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..validation import check_int, check_number

__all__ = ["cosine_schedule", "CosineSchedule", "linear_schedule", "LinearSchedule"]


@dataclass(frozen=True)
class _Schedule:
    """From ``start`` at step 0 to ``end`` at step ``steps``, then ``end`` for ever."""

    start: float
    end: float
    steps: int

    def __post_init__(self) -> None:
        # frozen: validated values are stored through object.__setattr__.
        object.__setattr__(self, "start", check_number(self.start, "start"))
        object.__setattr__(self, "end", check_number(self.end, "end"))
        object.__setattr__(self, "steps", check_int(self.steps, "steps"))

    def __call__(self, step: int) -> float:
        step = check_int(step, "step", low=0)
        if step >= self.steps:
            return self.end
        return self.start + (self.end - self.start) * self._progress(step / self.steps)

    @staticmethod
    def _progress(fraction_done: float) -> float:
        raise NotImplementedError


class LinearSchedule(_Schedule):
    """A straight line from ``start`` to ``end`` over ``steps`` steps (see :func:`linear_schedule`)."""

    @staticmethod
    def _progress(fraction_done: float) -> float:
        return fraction_done


class CosineSchedule(_Schedule):
    """A half cosine from ``start`` to ``end`` over ``steps`` steps (see :func:`cosine_schedule`)."""

    @staticmethod
    def _progress(fraction_done: float) -> float:
        return (1.0 - math.cos(math.pi * fraction_done)) / 2.0


def linear_schedule(start: float, end: float, steps: int) -> LinearSchedule:
    """``schedule(step)``: ``start`` at step 0, linearly to ``end`` at ``steps``, ``end`` afterwards.

    For ``SyntheticMix(p=...)``, whose step is the number of batches it has seen. ``start`` and
    ``end`` are fractions in [0, 1]; ``steps`` a positive integer.

    Example:
        >>> schedule = linear_schedule(0.8, 0.2, steps=100)
        >>> schedule
        LinearSchedule(start=0.8, end=0.2, steps=100)
        >>> [round(schedule(step), 3) for step in (0, 50, 100, 1000)]
        [0.8, 0.5, 0.2, 0.2]
    """
    return LinearSchedule(start, end, steps)


def cosine_schedule(start: float, end: float, steps: int) -> CosineSchedule:
    """``schedule(step)``: ``start`` at step 0, along a half cosine to ``end`` at ``steps``, ``end`` afterwards.

    Flat near both ends, steepest midway: ``end + (start - end) * (1 + cos(pi * step / steps)) / 2``.
    For ``SyntheticMix(p=...)``, whose step is the number of batches it has seen.

    Example:
        >>> schedule = cosine_schedule(0.8, 0.2, steps=100)
        >>> [round(schedule(step), 3) for step in (0, 25, 50, 100, 1000)]
        [0.8, 0.712, 0.5, 0.2, 0.2]
    """
    return CosineSchedule(start, end, steps)
