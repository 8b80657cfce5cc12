"""Dose schedules: the synthetic share of a batch as a function of the training step.

``SyntheticMix(sampler, p=linear_schedule(0.8, 0.2, steps=5000))`` replaces many rows early and
fewer late; any callable ``step -> fraction`` works as ``p`` too. Also the small value checks the
augment modules share.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

from ..errors import SynthaugError

__all__ = ["check_int", "check_number", "cosine_schedule", "CosineSchedule", "linear_schedule",
           "LinearSchedule", "shown"]


def check_int(value: Any, name: str, low: int = 1) -> int:
    """``value`` as an int ``>= low``; a one-line :class:`SynthaugError` naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise SynthaugError(f"{name}: expected an integer >= {low}, got {shown(value)}")
    return int(value)


def shown(value: Any) -> str:
    """``value`` for a one-line error: its repr for a number or a short string, else its type's name
    (a tensor's repr can span lines)."""
    text = repr(value)
    return text if isinstance(value, (numbers.Number, str)) and len(text) <= 80 else type(value).__name__


def check_number(value: Any, name: str, low: float = 0.0, high: float = 1.0, high_open: bool = False) -> float:
    """``value`` as a finite float in ``[low, high]`` (``[low, high)`` with ``high_open``; no upper
    bound for ``high=math.inf``); a one-line :class:`SynthaugError` naming ``name`` otherwise.

    Example:
        >>> check_number(0.25, "p")
        0.25
        >>> check_number(1.5, "p")
        Traceback (most recent call last):
        ...
        synthaug.errors.SynthaugError: p: expected a fraction in [0, 1], got 1.5
    """
    inside = (isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
              and low <= value and (value < high if high_open else value <= high))
    if not inside:
        raise SynthaugError(f"{name}: expected {_describe_range(low, high, high_open)}, got {shown(value)}")
    return float(value)


def _describe_range(low: float, high: float, high_open: bool) -> str:
    if high == math.inf:
        return f"a number >= {low:g}"
    if (low, high, high_open) == (0.0, 1.0, False):
        return "a fraction in [0, 1]"
    return f"a number in [{low:g}, {high:g}{')' if high_open else ']'}"


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
