"""Unlabelled images: more real data than the labels cover, for ``fit(..., unlabeled=...)``.

Sources: an image folder (flat or nested; any class structure is ignored), an ``.npz`` with an
``images`` array (``labels``, if present, are ignored), the built-in ``digits`` splits, an
:class:`~synthaug.data.ImageData`, or a map-style Dataset whose items are images or
``(image, label)`` pairs. Every image is converted to the labelled set's channels and size, the
way the labelled images themselves are (centre square crop, bicubic resize).
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import SynthaugError
from .images import ImageData, to_tensor
from .sources import (_array_from_item, _image_files, _pixel_max, _read_image, _shorter_side, _warn_shadowed,
                      builtin_name, builtins_overlap, dataset_length, read_source)


@dataclass
class UnlabeledImages:
    """Unlabelled images held in memory: uint8 ``[N, C, H, W]`` in ``0..pixel_max``.

    Example:
        >>> u = load_unlabeled("digits:test", image_shape=(1, 8, 8))
        >>> len(u), tuple(u.images.shape[1:]), float(u.as_float().max()) <= 1.0
        (450, (1, 8, 8), True)
    """

    images: torch.Tensor
    name: str
    pixel_max: int = 255
    converted: int = 0  # images whose channels or size had to change to match the labelled set

    def __len__(self) -> int:
        return self.images.shape[0]

    def as_float(self) -> torch.Tensor:
        return self.images.float() / self.pixel_max

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        h.update(repr((self.pixel_max, tuple(self.images.shape))).encode())
        h.update(self.images.numpy().tobytes())
        return "sha256:" + h.hexdigest()[:16]


def load_unlabeled(source: Any, image_shape: tuple[int, int, int], skip_bad_files: bool = False) -> UnlabeledImages:
    """Read ``source`` as unlabelled images shaped like the labelled set's ``(C, H, W)``; images
    already read in that shape come back as they are (the fit-on-first-use cache reads them once)."""
    if isinstance(source, UnlabeledImages) and tuple(source.images.shape[1:]) == tuple(image_shape):
        return source
    channels, size, _ = image_shape
    arrays, name, pixel_max = _read_arrays(source, size, skip_bad_files)
    if not arrays:
        raise SynthaugError(f"unlabeled data {name}: expected at least one image, got none")
    converted = sum(1 for a in arrays if a.shape[:2] != (size, size) or _channels(a) != channels)
    return UnlabeledImages(to_tensor(arrays, size, channels), name, pixel_max, converted)


def _channels(arr: np.ndarray) -> int:
    return 1 if arr.ndim == 2 else arr.shape[2]


def _read_arrays(source: Any, size: int, skip_bad_files: bool) -> tuple[list[np.ndarray], str, int]:
    if isinstance(source, ImageData) or builtin_name(source) is not None:
        raw = read_source(source)
        return raw.images, raw.name, raw.pixel_max
    if isinstance(source, (str, os.PathLike)):
        _warn_shadowed(os.fspath(source))
        path = Path(source)
        if not path.exists():
            raise SynthaugError(f"unlabeled data {os.fspath(source)!r} not found: expected an image folder or an "
                                f".npz file with an 'images' array")
        if path.is_dir():
            return _read_folder(path, size, skip_bad_files), path.name, 255
        if path.suffix.lower() == ".npz":
            return _read_npz(path)
        raise SynthaugError(f"unlabeled data {os.fspath(source)!r}: expected an image folder or an .npz file, "
                            f"got a {path.suffix or 'plain'} file")
    return _read_dataset(source), type(source).__name__, 255


def _read_folder(root: Path, size: int, skip_bad_files: bool) -> list[np.ndarray]:
    """Every image file below ``root`` (hidden files and folders left out), each decoded already
    shrunk towards ``size`` like the labelled folder's."""
    images = []
    for path in _image_files(root):
        try:
            _shorter_side(path)  # rejects files that are not images, with the labelled reader's message
            images.append(_read_image(path, size)[0])
        except SynthaugError:
            if not skip_bad_files:
                raise
    return images


def _read_npz(path: Path) -> tuple[list[np.ndarray], str, int]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "images" not in npz.files:
                raise SynthaugError(f"{path}: expected an 'images' array, found {', '.join(sorted(npz.files)) or 'none'}")
            images, pixel_max = npz["images"], npz["pixel_max"] if "pixel_max" in npz.files else None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise SynthaugError(f"{path}: expected a readable .npz archive, got {type(err).__name__}: {err}") from None
    if images.dtype != np.uint8 or images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[3] not in (1, 3)):
        raise SynthaugError(f"{path}: expected 'images' as uint8 (N,H,W) or (N,H,W,C) with C 1 or 3, "
                            f"got {images.dtype} of shape {images.shape}")
    return list(images), path.name, _pixel_max(pixel_max, images, path)


def _read_dataset(dataset: Any) -> list[np.ndarray]:
    images = []
    for i in range(dataset_length(dataset)):
        item = dataset[i]
        image = item[0] if isinstance(item, (tuple, list)) and len(item) == 2 else item
        images.append(_array_from_item(image, i))
    return images


def check_unlabeled_apart(data: Any, unlabeled: Any) -> None:
    """Refuse an unlabelled folder that is the labelled folder, lies inside it or contains it: the
    labelled images would come in again without their labels (and their labels could leak into
    an evaluation that treats the unlabelled pool as new data). Built-in sets overlap by name:
    ``digits`` holds ``digits:train``."""
    names = builtin_name(data), builtin_name(unlabeled)
    if None not in names and builtins_overlap(*names):
        raise SynthaugError(f"unlabeled data {names[1]} overlaps the labelled data {names[0]}: expected images the "
                            f"labelled set does not hold (e.g. {names[0].partition(':')[0]}:test beside "
                            f"{names[0].partition(':')[0]}:train)")
    if not all(isinstance(s, (str, os.PathLike)) and builtin_name(s) is None for s in (data, unlabeled)):
        return
    a, b = Path(data).resolve(), Path(unlabeled).resolve()
    if a == b or a in b.parents or b in a.parents:
        raise SynthaugError(f"unlabeled data {os.fspath(unlabeled)} overlaps the labelled data {os.fspath(data)}: "
                            f"expected images the labelled set does not hold (a separate folder or .npz)")


__all__ = ["UnlabeledImages", "load_unlabeled", "check_unlabeled_apart"]
