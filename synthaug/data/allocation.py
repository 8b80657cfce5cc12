"""How many synthetic (or repeated real) items each class gets: the one place those choices are
made, shared by ``SyntheticDataset`` and fit's quality monitor.

Example:
    >>> import torch
    >>> synthetic_counts(torch.tensor([6, 4, 2]), None, None, None, True, ["a", "b", "c"]).tolist()
    [0, 2, 4]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..errors import SynthaugError
from ..seeding import derive
from ..validation import is_int

__all__ = ["DEFAULT_RATIO", "class_index", "repeated_items", "short_names", "synthetic_counts"]

#: The synthetic share when none of ratio, per_class or balance is given: synthetic items per
#: real item. Recommended dose: benchmarks/usefulness.py.
DEFAULT_RATIO = 1.0


def synthetic_counts(real_counts: torch.Tensor, ratio: float | None, per_class: int | Mapping | None,
                     classes: Sequence[Any] | None, balance: bool, class_names: Sequence[str]) -> torch.Tensor:
    """How many synthetic items each class gets; the one place those choices are made. At most
    one of ``ratio``, ``per_class`` and ``balance``; none means ``ratio=DEFAULT_RATIO``."""
    given = [name for name, v in (("ratio", ratio), ("per_class", per_class), ("balance", balance or None))
             if v is not None]
    if not given:
        ratio, given = DEFAULT_RATIO, ["ratio"]
    if len(given) != 1:
        raise SynthaugError(f"expected at most one of ratio, per_class or balance=True, got {', '.join(given)}")
    k = len(real_counts)
    chosen = torch.zeros(k, dtype=torch.bool)
    chosen[[class_index(c, class_names, "classes") for c in classes] if classes is not None else slice(None)] = True
    counts = torch.zeros(k, dtype=torch.int64)
    if ratio is not None:
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio <= 100:
            raise SynthaugError(f"ratio: expected a number in (0, 100], got {ratio!r}")
        weights = real_counts.double() * chosen
        if weights.sum() == 0:
            weights = chosen.double()
        total = round(ratio * int(real_counts.sum()))
        exact = weights / weights.sum() * total
        counts = exact.floor().long()
        remainder = total - int(counts.sum())  # largest remainders get the leftover items
        counts[torch.argsort(exact - counts, descending=True, stable=True)[:remainder]] += 1
    elif per_class is not None:
        if isinstance(per_class, Mapping):
            for c, n in per_class.items():
                counts[class_index(c, class_names, "per_class")] = _count(n, f"per_class[{c!r}]")
            counts *= chosen if classes is not None else 1
        else:
            counts[chosen] = _count(per_class, "per_class")
    else:
        counts[chosen] = (real_counts.max() - real_counts)[chosen]
    return counts


def repeated_items(labels: torch.Tensor, counts: torch.Tensor, seed: int) -> torch.Tensor:
    """``counts[c]`` indices of real items of class ``c`` for every class, each of its items
    repeated equally often (the remainder drawn with ``seed``): class-balanced oversampling.

    Example:
        >>> repeated_items(torch.tensor([0, 0, 0, 1]), torch.tensor([0, 2]), seed=0).tolist()
        [3, 3]
    """
    g = torch.Generator().manual_seed(derive(seed, "repeated"))
    chosen = []
    for c, k in enumerate(counts.tolist()):
        members = (labels == c).nonzero().flatten()
        if k and len(members):
            members = members[torch.randperm(len(members), generator=g)]
            chosen.append(members[torch.arange(k) % len(members)])
    return torch.cat(chosen) if chosen else torch.empty(0, dtype=torch.int64)


def _count(n: Any, what: str) -> int:
    if not is_int(n) or n < 0:
        raise SynthaugError(f"{what}: expected a non-negative integer, got {n!r}")
    return n


def class_index(c: Any, class_names: Sequence[str], what: str) -> int:
    """The generator's index of class ``c`` (a name or an index) that argument ``what`` names."""
    if isinstance(c, str) and c in class_names:
        return list(class_names).index(c)
    if isinstance(c, (int, np.integer)) and not isinstance(c, (bool, np.bool_)) and 0 <= c < len(class_names):
        return int(c)
    raise SynthaugError(f"{what}: expected a class name or index 0..{len(class_names) - 1} of the generator's "
                        f"classes {short_names(class_names)}, got {c!r}")


def short_names(names: Sequence[Any], n: int = 5) -> str:
    names = [str(x) for x in names]
    return "[" + ", ".join(names[:n]) + (", ...]" if len(names) > n else "]")
