"""Channel widths of the convolutional pyramids that dcgan and vae share."""

from __future__ import annotations

import math

MAX_WIDTH = 512


def pyramid_widths(base: int, image_size: int) -> list[int]:
    """Channels from 4x4 up to ``image_size``: doubling toward 4x4, capped at ``MAX_WIDTH``.

    Example:
        >>> pyramid_widths(64, 32)
        [512, 256, 128, 64]
    """
    n = int(math.log2(image_size)) - 2
    return [min(base * 2 ** (n - i), MAX_WIDTH) for i in range(n + 1)]
