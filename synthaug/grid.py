"""Sample grids as PNG, without torchvision."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .atomic import atomic_write


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
    """Write a grid PNG atomically."""
    img = grid_image(images, nrow)
    return atomic_write(path, lambda tmp: img.save(tmp, format="PNG"))
