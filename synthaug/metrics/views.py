"""Random views of a batch, on tensors, every draw from one seeded ``torch.Generator``.

- :class:`ClassicalAugment`: the classical augmentation every classifier arm uses (the strong
  baseline): a random affine map per image (small rotation, scale and shift: a random crop with
  zero padding is the shift-only case), done with ``affine_grid``/``grid_sample`` on the batch.
  Horizontal flips are left out on purpose: they change what a digit or a letter means.
- :class:`StrongView`: FixMatch's strong view (Sohn et al. 2020: RandAugment + Cutout), made of
  ops on tensors: a larger affine map with shear, random brightness/contrast/sharpness/solarise/
  posterise/equalise-like ops, and one cutout square per image. The weak view is
  :class:`ClassicalAugment` itself (shift and a little rotation and scale; flips only where they
  keep the meaning).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


__all__ = ["ClassicalAugment", "StrongView"]


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


def _affine(images: torch.Tensor, u: torch.Tensor, degrees: float, scale: float, shift: float,
            shear: float = 0.0) -> torch.Tensor:
    """Warp each image by the affine map that ``u`` (``[N, 5]`` uniform in [-1, 1]) picks."""
    angle = u[:, 0] * math.radians(degrees)
    zoom = 1 + u[:, 1] * scale
    tx, ty = 2 * shift * u[:, 2], 2 * shift * u[:, 3]
    k = u[:, 4] * shear
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin + k * cos, tx], 1), torch.stack([sin, cos + k * sin, ty], 1)], 1)
    theta = theta.to(images.device, images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class StrongView(nn.Module):
    """FixMatch's strongly augmented view of float images in [0, 1] (labels pass through).

    Per image: an affine map (rotation up to ``degrees``, zoom ``1 ± scale``, shift up to
    ``shift``, shear up to ``shear``), then two of six photometric ops, each at a random
    magnitude (brightness, contrast, sharpness, solarise, posterise, auto-contrast), then one
    cutout square of side ``cutout`` x the image side at a random place, filled with 0.5.

    Example:
        >>> view = StrongView(seed=0)
        >>> x = torch.rand(4, 1, 8, 8)
        >>> out, _ = view(x, torch.arange(4))
        >>> out.shape, float(out.min()) >= 0.0, float(out.max()) <= 1.0
        (torch.Size([4, 1, 8, 8]), True, True)
        >>> torch.equal(StrongView(seed=0)(x, None)[0], out)
        True
    """

    OPS = 6

    def __init__(self, degrees: float = 30.0, scale: float = 0.2, shift: float = 0.2, shear: float = 0.3,
                 cutout: float = 0.4, seed: int = 0) -> None:
        super().__init__()
        self.degrees, self.scale, self.shift, self.shear = float(degrees), float(scale), float(shift), float(shear)
        self.cutout = float(cutout)
        self.rng = torch.Generator().manual_seed(int(seed))

    def settings(self) -> dict:
        return {"degrees": self.degrees, "scale": self.scale, "shift": self.shift, "shear": self.shear,
                "cutout": self.cutout, "ops": "2 of brightness, contrast, sharpness, solarise, posterise, autocontrast"}

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        n, _, h, w = images.shape
        # Every draw at once, on the CPU, so the view is a pure function of (seed, batch shapes).
        geometry = torch.rand(n, 5, generator=self.rng) * 2 - 1
        chosen = torch.rand(n, self.OPS, generator=self.rng).argsort(1)[:, :2]
        magnitude = torch.rand(n, 2, generator=self.rng)
        corner = torch.rand(n, 2, generator=self.rng)
        x = _affine(images, geometry, self.degrees, self.scale, self.shift, self.shear)
        for slot in range(2):
            op = chosen[:, slot].to(x.device)
            m = magnitude[:, slot].to(x.device, x.dtype).view(n, 1, 1, 1)
            x = _photometric(x, op, m)
        side = max(1, round(self.cutout * min(h, w)))
        top = (corner[:, 0] * (h - side + 1)).long().clamp(max=h - side).to(x.device)
        left = (corner[:, 1] * (w - side + 1)).long().clamp(max=w - side).to(x.device)
        rows = torch.arange(h, device=x.device).view(1, h, 1)
        cols = torch.arange(w, device=x.device).view(1, 1, w)
        hole = ((rows >= top.view(n, 1, 1)) & (rows < (top + side).view(n, 1, 1))
                & (cols >= left.view(n, 1, 1)) & (cols < (left + side).view(n, 1, 1))).unsqueeze(1)
        return x.masked_fill(hole, 0.5).clamp(0, 1), labels


def _photometric(x: torch.Tensor, op: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Apply op ``op[i]`` at magnitude ``m[i]`` in [0, 1] to image ``i`` (all ops computed, one kept:
    the batch stays one tensor program with no per-image Python)."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    blur = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    low = x.amin(dim=(2, 3), keepdim=True)
    high = x.amax(dim=(2, 3), keepdim=True)
    levels = torch.pow(2.0, 1 + (m * 3).floor())  # 2..16 grey levels
    candidates = torch.stack([
        x * (0.4 + 1.2 * m),                                   # brightness 0.4..1.6
        mean + (x - mean) * (0.4 + 1.2 * m),                   # contrast 0.4..1.6
        blur + (x - blur) * (0.0 + 3.0 * m),                   # sharpness: blur (0) to sharpen (3)
        torch.where(x >= 1 - m * 0.5, 1 - x, x),               # solarise above a threshold 0.5..1
        torch.floor(x * (levels - 1) + 0.5) / (levels - 1),    # posterise
        (x - low) / (high - low).clamp_min(1e-3),              # auto-contrast
    ])
    index = op.view(1, -1, 1, 1, 1).expand(1, *x.shape)
    return candidates.gather(0, index).squeeze(0).clamp(0, 1)
