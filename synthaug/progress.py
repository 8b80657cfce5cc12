"""Progress bars go to stderr, so stdout stays machine-readable."""

from __future__ import annotations

import sys

from tqdm import tqdm

__all__ = ["progress_bar"]


def progress_bar(total: int, desc: str, enabled: bool = True, initial: int = 0):
    return tqdm(total=total, initial=initial, desc=desc, file=sys.stderr, disable=not enabled,
                dynamic_ncols=True, mininterval=0.5, leave=True)
