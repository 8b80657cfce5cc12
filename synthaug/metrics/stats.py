"""Means with 95% t intervals, and paired gains: how every comparison of arms is reported."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats


def mean_interval(values: Sequence[float]) -> dict[str, Any]:
    """Mean and the half-width of its 95% t interval (``None`` with fewer than two values).

    Example:
        >>> r = mean_interval([0.01, 0.02, 0.0])
        >>> round(r["mean"], 4), round(r["ci95"], 6), r["n"]
        (0.01, 0.024841, 3)
    """
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    n = len(arr)
    mean = float(arr.mean()) if n else None
    half = float(stats.t.ppf(0.975, n - 1) * arr.std(ddof=1) / math.sqrt(n)) if n >= 2 else None
    low = mean - half if half is not None else None
    high = mean + half if half is not None else None
    return {"mean": mean, "ci95": half, "low": low, "high": high, "n": n, "values": [float(v) for v in arr]}


def paired_gain(baseline: Sequence[float], treated: Sequence[float]) -> dict[str, Any]:
    """The gain ``treated - baseline`` per seed (same seed, same position), with its interval."""
    if len(baseline) != len(treated):
        raise ValueError(f"paired values: expected equal lengths, got {len(baseline)} and {len(treated)}")
    return mean_interval([t - b for b, t in zip(baseline, treated)])


__all__ = ["mean_interval", "paired_gain"]
