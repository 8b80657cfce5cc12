"""Channel widths of the convolutional pyramids that dcgan and vae share."""

from __future__ import annotations

import math

__all__ = ["DEFAULT_WIDTH", "MAX_WIDTH", "MIN_DEFAULT_WIDTH", "default_width", "pyramid_widths"]

MAX_WIDTH = 512
#: The default base width at and below 16x16; above, it halves each time the side doubles.
DEFAULT_WIDTH = 64
MIN_DEFAULT_WIDTH = 16


def default_width(image_size: int) -> int:
    """The base width ``fit`` uses unless told otherwise: 64 up to 16x16, 32 at 32x32, 16 at 64x64.

    Why: the pyramid's cost grows with the square of the side at a fixed base width; at 32x32 a
    width-64 dcgan step took 1.16 s on 2 CPU cores against 0.31 s at width 32
    (benchmarks/results/default_fit.md measures what that costs in quality).

    Example:
        >>> [default_width(s) for s in (8, 16, 32, 64)]
        [64, 64, 32, 16]
    """
    return max(MIN_DEFAULT_WIDTH, min(DEFAULT_WIDTH, DEFAULT_WIDTH * 16 // image_size))


def pyramid_widths(base: int, image_size: int) -> list[int]:
    """Channels from 4x4 up to ``image_size``: doubling toward 4x4, capped at ``MAX_WIDTH``.

    Example:
        >>> pyramid_widths(64, 32)
        [512, 256, 128, 64]
    """
    n = int(math.log2(image_size)) - 2
    return [min(base * 2 ** (n - i), MAX_WIDTH) for i in range(n + 1)]
