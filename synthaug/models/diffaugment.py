"""DiffAugment (Zhao et al. 2020): differentiable augmentations applied to real and fake images
before the discriminator, so a discriminator trained on little data cannot simply memorise it.

Each operation is differentiable in the images; its random parameters are drawn on the CPU from
the trainer's ``torch.Generator`` (never the global RNG), so training stays reproducible and a
resumed run is bitwise equal to an uninterrupted one. The operations follow the reference
implementation, which works on images in [-1, 1]; ours are in [0, 1] and are mapped there and
back.

Example:
    >>> import torch
    >>> ops = parse_policy("translation,cutout")
    >>> ops
    ('translation', 'cutout')
    >>> x = torch.rand(4, 1, 8, 8, requires_grad=True)
    >>> y = diff_augment(x, ops, torch.Generator().manual_seed(0))
    >>> y.shape, y.requires_grad
    (torch.Size([4, 1, 8, 8]), True)
    >>> torch.equal(y, diff_augment(x, ops, torch.Generator().manual_seed(0)))
    True
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F

from ..errors import SynthaugError

__all__ = ["OPERATIONS", "POLICIES", "diff_augment", "parse_policy"]

#: The operations, in the order they are applied (the reference order: colour first).
OPERATIONS = ("color", "translation", "cutout")

#: Every valid config value: "auto", "off", or a subset of the operations, named in this order.
POLICIES = ("auto", "off", *(",".join(c) for r in (1, 2, 3)
                              for c in itertools.combinations(("translation", "cutout", "color"), r)))


def parse_policy(policy: str) -> tuple[str, ...]:
    """``"translation,cutout"`` -> ``("translation", "cutout")`` in application order; ``"off"``
    or ``""`` -> ``()``. Raises :class:`SynthaugError` naming the valid operations."""
    text = str(policy).strip().lower()
    if text in ("", "off", "none"):
        return ()
    names = [p.strip() for p in text.split(",")]
    bad = [n for n in names if n not in OPERATIONS]
    if bad or len(set(names)) != len(names):
        raise SynthaugError(f"diffaugment: expected 'auto', 'off' or a comma-separated subset of "
                            f"{', '.join(OPERATIONS)}, got {policy!r}")
    return tuple(op for op in OPERATIONS if op in names)


def diff_augment(images: torch.Tensor, ops: tuple[str, ...], rng: torch.Generator) -> torch.Tensor:
    """Apply ``ops`` (from :func:`parse_policy`) to a batch in [0, 1]; independent draws per image."""
    if not ops:
        return images
    x = images * 2.0 - 1.0
    for op in ops:
        x = _OPS[op](x, rng)
    return (x + 1.0) * 0.5


def _uniform(rng: torch.Generator, n: int, like: torch.Tensor) -> torch.Tensor:
    # Drawn on the CPU generator, then moved: the same numbers on every device.
    return torch.rand(n, 1, 1, 1, generator=rng).to(device=like.device, dtype=like.dtype)


def _color(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    x = x + (_uniform(rng, n, x) - 0.5)  # brightness
    if x.shape[1] > 1:  # saturation means nothing for grey images
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (_uniform(rng, n, x) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(rng, n, x) + 0.5) + mean  # contrast


def _translation(x: torch.Tensor, rng: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (n, 1, 1), generator=rng).to(x.device)
    dx = torch.randint(-sw, sw + 1, (n, 1, 1), generator=rng).to(x.device)
    b, gy, gx = torch.meshgrid(torch.arange(n, device=x.device), torch.arange(h, device=x.device),
                               torch.arange(w, device=x.device), indexing="ij")
    # Shifted-in pixels read the zero (mid-grey) border of a padded copy.
    gy = torch.clamp(gy + dy + 1, 0, h + 1)
    gx = torch.clamp(gx + dx + 1, 0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)
    return padded[b, gy, gx].permute(0, 3, 1, 2).contiguous()


def _cutout(x: torch.Tensor, rng: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), generator=rng).to(x.device)
    ox = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), generator=rng).to(x.device)
    b, gy, gx = torch.meshgrid(torch.arange(n, device=x.device), torch.arange(ch, device=x.device),
                               torch.arange(cw, device=x.device), indexing="ij")
    gy = torch.clamp(gy + oy - ch // 2, 0, h - 1)
    gx = torch.clamp(gx + ox - cw // 2, 0, w - 1)
    mask = torch.ones(n, h, w, dtype=x.dtype, device=x.device)
    mask[b, gy, gx] = 0
    return x * mask.unsqueeze(1)


_OPS = {"color": _color, "translation": _translation, "cutout": _cutout}
