"""The in-memory dataset every reader produces, and the one resize/colour path they share."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from ..errors import SynthaugError


@dataclass
class ImageData:
    """A labelled image dataset held in memory.

    Attributes:
        images: uint8 tensor ``[N, C, H, W]``, values in ``0..pixel_max``.
        labels: int64 tensor ``[N]``, values in ``0..len(class_names)-1``.
        class_names: one name per class.
        name: where it came from (``digits``, a folder path, ...).
        pixel_max: the value of a white pixel (255 for images, 16 for ``digits``).
        skipped: files left out by ``skip_bad_files``.
    """

    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]
    name: str
    pixel_max: int = 255
    skipped: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    def __len__(self) -> int:
        return self.images.shape[0]

    def class_counts(self) -> list[int]:
        return torch.bincount(self.labels, minlength=self.num_classes).tolist()

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        h.update(repr((self.class_names, self.pixel_max, tuple(self.images.shape))).encode())
        h.update(self.labels.numpy().tobytes())
        h.update(self.images.numpy().tobytes())
        return "sha256:" + h.hexdigest()[:16]

    def as_float(self) -> torch.Tensor:
        """Images as float32 in [0, 1]."""
        return self.images.float() / self.pixel_max

    # Map-style dataset of (HW or HWC uint8 array, int label), so it plugs into DataLoader,
    # albumentations pipelines and SyntheticDataset as it is.
    @property
    def classes(self) -> list[str]:
        return self.class_names

    @property
    def targets(self) -> list[int]:
        return self.labels.tolist()

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        image = self.images[index].permute(1, 2, 0).numpy()
        return (image[..., 0] if image.shape[2] == 1 else image), int(self.labels[index])

    def subset(self, indices: Sequence[int] | torch.Tensor) -> ImageData:
        """The items at ``indices``, as a new ImageData (same classes and pixel scale)."""
        idx = torch.as_tensor(indices, dtype=torch.int64)
        return ImageData(self.images[idx], self.labels[idx], list(self.class_names), self.name, self.pixel_max)


def stratified_split(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (rest, part): ``part`` takes ``fraction`` of each class (at least one when
    ``fraction > 0``), chosen by ``seed``; both sorted.

    Example:
        >>> rest, part = stratified_split(torch.tensor([0, 0, 0, 0, 1, 1]), 0.5, seed=0)
        >>> len(rest), len(part), sorted(torch.tensor([0, 0, 0, 0, 1, 1])[part].tolist())
        (3, 3, [0, 0, 1])
    """
    if fraction <= 0:
        return torch.arange(len(labels)), torch.empty(0, dtype=torch.int64)
    g = torch.Generator().manual_seed(seed)
    part = []
    for c in torch.unique(labels):
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        part.append(idx[:max(1, round(fraction * len(idx)))])
    chosen = torch.sort(torch.cat(part)).values
    mask = torch.ones(len(labels), dtype=torch.bool)
    mask[chosen] = False
    return torch.nonzero(mask).flatten(), chosen


def check_labels(labels: np.ndarray, class_names: Sequence[str] | None, source: str) -> list[str]:
    """Validate integer labels against the class names (or infer names); return the names."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise SynthaugError(f"{source}: expected labels as a 1-D integer array, got {labels.dtype} of shape {labels.shape}")
    k = len(class_names) if class_names is not None else len(np.unique(labels))
    if k < 2:
        raise SynthaugError(f"{source}: expected at least 2 classes, got {k}")
    bad = labels[(labels < 0) | (labels >= k)]
    if bad.size:
        raise SynthaugError(f"{source}: expected labels in 0..{k - 1} ({k} classes), got {int(bad[0])}")
    names = [str(n) for n in class_names] if class_names is not None else [str(i) for i in range(k)]
    return names


def resolve_image_size(native: int, supported: Sequence[int]) -> int:
    """The size to train at when the user gave none: native if possible, else the next one up."""
    if native in supported:
        return native
    larger = [s for s in supported if s >= native]
    return min(larger) if larger else max(supported)


def native_size(images: Sequence[np.ndarray]) -> int:
    """The most common shorter side among the images."""
    return Counter(min(a.shape[:2]) for a in images).most_common(1)[0][0]


def to_tensor(images: Sequence[np.ndarray], size: int, channels: int | None) -> torch.Tensor:
    """HWC (or HW) uint8 arrays of any sizes -> uint8 ``[N, C, size, size]``.

    Non-square images are centre-cropped to a square first. ``channels=None`` keeps greyscale
    data greyscale (1) and colour data colour (3).
    """
    if channels is None:
        channels = 1 if all(_is_grey(a) for a in images) else 3
    out = np.empty((len(images), size, size, channels), dtype=np.uint8)
    for i, arr in enumerate(images):
        arr = _square(arr)
        img = Image.fromarray(arr if arr.ndim == 2 else (arr[..., 0] if arr.shape[2] == 1 else arr))
        img = img.convert("L" if channels == 1 else "RGB")
        if img.size != (size, size):
            img = img.resize((size, size), Image.BICUBIC)
        a = np.asarray(img)
        out[i] = a[..., None] if a.ndim == 2 else a
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def _square(arr: np.ndarray) -> np.ndarray:
    h, w = arr.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return arr[top:top + s, left:left + s]


def _is_grey(arr: np.ndarray) -> bool:
    if arr.ndim == 2 or arr.shape[2] == 1:
        return True
    return bool((arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all())
