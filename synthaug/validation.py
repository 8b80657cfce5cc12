"""The value checks of synthaug's arguments, one place: each gives a one-line
:class:`~synthaug.errors.SynthaugError` naming the argument, what was expected and what came.

``is_int`` and ``is_real`` say what the checks mean by a number: ``True`` is an ``int`` to Python,
never a count or a fraction to synthaug.

Example:
    >>> is_int(3), is_int(True), is_int(3.0), is_real(0.5), is_real(False)
    (True, False, False, True, False)
    >>> check_int(0, "steps")
    Traceback (most recent call last):
    ...
    synthaug.errors.SynthaugError: steps: expected an integer >= 1, got 0
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from .errors import SynthaugError

__all__ = ["check_int", "check_number", "check_positive_ints", "is_int", "is_real", "shown"]


def is_int(value: Any) -> bool:
    """An integer (Python's or numpy's), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    """A real number (an integer or a float, Python's or numpy's), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_int(value: Any, name: str, low: int = 1) -> int:
    """``value`` as an int ``>= low``; a one-line :class:`SynthaugError` naming ``name`` otherwise."""
    if not is_int(value) or value < low:
        raise SynthaugError(f"{name}: expected an integer >= {low}, got {shown(value)}")
    return int(value)


def check_positive_ints(**values: Any) -> None:
    """Each value not ``None`` a positive integer; else one line naming every one that is not.

    Example:
        >>> check_positive_ints(steps=0, batch_size=64, epochs=None)
        Traceback (most recent call last):
        ...
        synthaug.errors.SynthaugError: steps must be a positive integer, got 0
    """
    bad = [f"{k} must be a positive integer, got {v!r}" for k, v in values.items()
           if v is not None and (not is_int(v) or v < 1)]
    if bad:
        raise SynthaugError("; ".join(bad))


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
    inside = (is_real(value) and math.isfinite(value) and low <= value and (value < high if high_open else value <= high))
    if not inside:
        raise SynthaugError(f"{name}: expected {_describe_range(low, high, high_open)}, got {shown(value)}")
    return float(value)


def _describe_range(low: float, high: float, high_open: bool) -> str:
    if high == math.inf:
        return f"a number >= {low:g}"
    if (low, high, high_open) == (0.0, 1.0, False):
        return "a fraction in [0, 1]"
    return f"a number in [{low:g}, {high:g}{')' if high_open else ']'}"
