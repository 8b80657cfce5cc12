"""Sample grids as PNG, without torchvision."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from ._version import __version__
from .atomic import atomic_write

__all__ = ["PNG_MARKER_KEY", "grid_image", "is_synthaug_grid", "save_grid"]

#: PNG text chunk that marks a grid as synthaug's, so ``--force`` may replace it and nothing else.
PNG_MARKER_KEY = "synthaug"


def grid_image(images: torch.Tensor, nrow: int, min_cell: int = 32, pad: int = 1) -> Image.Image:
    """Tile ``[N, C, H, W]`` images in [0, 1] into rows of ``nrow``; tiny images are enlarged
    (nearest neighbour) so each cell is at least ``min_cell`` pixels wide."""
    n, c, h, w = images.shape
    scale = max(1, -(-min_cell // w))
    rows = -(-n // nrow)
    arr = (images.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    arr = arr.repeat(scale, axis=1).repeat(scale, axis=2)
    ch, cw = h * scale, w * scale
    canvas = np.full((rows * (ch + pad) + pad, nrow * (cw + pad) + pad, c), 64, dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, nrow)
        y, x = pad + r * (ch + pad), pad + col * (cw + pad)
        canvas[y:y + ch, x:x + cw] = arr[i]
    return Image.fromarray(canvas[..., 0] if c == 1 else canvas)


def save_grid(images: torch.Tensor, nrow: int, path: str | Path) -> Path:
    """Write a grid PNG atomically, marked as synthaug's (see :func:`is_synthaug_grid`)."""
    img = grid_image(images, nrow)
    marker = PngInfo()
    marker.add_text(PNG_MARKER_KEY, f"sample grid, synthaug {__version__}")
    return atomic_write(path, lambda tmp: img.save(tmp, format="PNG", pnginfo=marker))


def is_synthaug_grid(path: str | Path) -> bool:
    """True if ``path`` is a PNG that :func:`save_grid` wrote (it carries the marker chunk)."""
    try:
        with Image.open(path) as img:  # reads the header chunks only, not the pixels
            return img.format == "PNG" and PNG_MARKER_KEY in img.info
    except (OSError, ValueError, Image.DecompressionBombError):
        return False
