"""Classical augmentation on batches: the strong baseline every arm of the gain experiment uses.

A random affine map per image (small rotation, scale and shift: a random crop with zero padding
is the shift-only case), done with ``affine_grid``/``grid_sample`` on the whole batch, its
parameters drawn from one seeded ``torch.Generator``. Horizontal flips are left out on purpose:
they change what a digit or a letter means.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class ClassicalAugment(nn.Module):
    """``images, labels = augment(images, labels)``: a batch hook for
    :func:`~synthaug.metrics.classifier.fit_steps`; labels pass through unchanged.

    Args:
        degrees: rotations drawn uniformly from ``[-degrees, degrees]``.
        scale: zoom factors drawn uniformly from ``[1 - scale, 1 + scale]``.
        shift: shifts drawn uniformly from ``[-shift, shift]`` of the image size, per axis.
        seed: seeds the generator every draw comes from: the same seed and the same batch
            shapes give the same transforms.

    Example:
        >>> augment = ClassicalAugment(seed=0)
        >>> x = torch.rand(4, 1, 8, 8)
        >>> out, y = augment(x, torch.arange(4))
        >>> out.shape, bool((out - x).abs().max() > 0), torch.equal(ClassicalAugment(seed=0)(x, y)[0], out)
        (torch.Size([4, 1, 8, 8]), True, True)
    """

    def __init__(self, degrees: float = 10.0, scale: float = 0.1, shift: float = 0.125, seed: int = 0) -> None:
        super().__init__()
        self.degrees, self.scale, self.shift = float(degrees), float(scale), float(shift)
        self.rng = torch.Generator().manual_seed(int(seed))

    def settings(self) -> dict:
        return {"degrees": self.degrees, "scale": self.scale, "shift": self.shift}

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = images.shape[0]
        u = torch.rand(n, 4, generator=self.rng) * 2 - 1  # one draw per image and parameter, on the CPU
        angle = u[:, 0] * math.radians(self.degrees)
        zoom = 1 + u[:, 1] * self.scale
        # affine_grid's coordinates span [-1, 1]: a shift of s image widths is 2s there.
        tx, ty = 2 * self.shift * u[:, 2], 2 * self.shift * u[:, 3]
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
        theta = theta.to(images.device, images.dtype)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        out = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return out, labels

    def extra_repr(self) -> str:
        return f"degrees={self.degrees}, scale={self.scale}, shift={self.shift}"
