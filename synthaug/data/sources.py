"""Readers: each turns one kind of source into raw images (HWC/HW uint8 arrays) and labels."""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import SynthaugError
from .images import check_labels

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
DIGITS_SPLITS = ("digits", "digits:train", "digits:test")


@dataclass
class RawImages:
    images: list[np.ndarray]
    labels: np.ndarray
    class_names: list[str]
    name: str
    pixel_max: int = 255
    skipped: list[str] = field(default_factory=list)


def read_digits(spec: str) -> RawImages:
    """The UCI handwritten digits shipped with scikit-learn: 1797 8x8 images, 17 grey levels.

    ``digits:train`` / ``digits:test`` are a stratified 75/25 split (seed 0), so generators can
    be fitted on one part and judged on the other.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = bunch.images.astype(np.uint8)
    labels = bunch.target.astype(np.int64)
    if spec != "digits":
        idx_train, idx_test = train_test_split(np.arange(len(labels)), test_size=0.25,
                                               stratify=labels, random_state=0)
        idx = np.sort(idx_train if spec == "digits:train" else idx_test)
        images, labels = images[idx], labels[idx]
    return RawImages(list(images), labels, [str(i) for i in range(10)], spec, pixel_max=16)


def read_npz(path: Path) -> RawImages:
    """An ``.npz`` with ``images`` (N,H,W[,C] uint8) and ``labels`` (N ints); optional
    ``class_names`` and ``pixel_max``."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise SynthaugError(f"{path}: expected a readable .npz archive, got {type(err).__name__}: {err}") from None
    missing = [k for k in ("images", "labels") if k not in arrays]
    if missing:
        raise SynthaugError(f"{path}: expected arrays 'images' and 'labels', missing {', '.join(missing)} "
                            f"(found: {', '.join(sorted(arrays)) or 'none'})")
    images, labels = arrays["images"], arrays["labels"]
    if images.dtype != np.uint8 or images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[3] not in (1, 3)):
        raise SynthaugError(f"{path}: expected 'images' as uint8 (N,H,W) or (N,H,W,C) with C 1 or 3, "
                            f"got {images.dtype} of shape {images.shape}")
    if len(images) == 0:
        raise SynthaugError(f"{path}: expected at least one image, got 0")
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != len(images):
        raise SynthaugError(f"{path}: expected one label per image ({len(images)}), got labels of shape {labels.shape}")
    names = arrays.get("class_names")
    if names is not None and names.ndim != 1:
        raise SynthaugError(f"{path}: expected 'class_names' as a 1-D array of names, got shape {names.shape}")
    class_names = check_labels(labels, None if names is None else [str(n) for n in names], str(path))
    pixel_max = _pixel_max(arrays.get("pixel_max"), images, path)
    return RawImages(list(images), labels.astype(np.int64), class_names, str(path), pixel_max)


def _pixel_max(value: np.ndarray | None, images: np.ndarray, path: Path) -> int:
    """The white level of an .npz: 255 unless given; every pixel must lie at or below it."""
    if value is None:
        return 255
    if value.ndim != 0 or not np.issubdtype(value.dtype, np.integer) or not 1 <= int(value) <= 255:
        raise SynthaugError(f"{path}: expected 'pixel_max' as one integer in 1..255, got {value.tolist()!r}")
    top = int(images.max())
    if top > int(value):
        raise SynthaugError(f"{path}: expected pixel values <= pixel_max {int(value)}, got {top}")
    return int(value)


def read_folder(root: Path, skip_bad_files: bool = False) -> RawImages:
    """An image folder: one subfolder per class, PNG/JPEG/BMP files of any size inside."""
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise SynthaugError(f"image folder {root} has no class subfolders: expected one subfolder per class")
    if len(class_dirs) < 2:
        raise SynthaugError(f"image folder {root}: expected at least 2 classes (subfolders), got 1 ({class_dirs[0].name})")
    images, labels, skipped = [], [], []
    for label, class_dir in enumerate(class_dirs):
        count = 0
        for path in sorted(p for p in class_dir.rglob("*") if p.is_file() and not p.name.startswith(".")):
            try:
                images.append(_read_image(path))
            except SynthaugError:
                if not skip_bad_files:
                    raise
                skipped.append(str(path))
                continue
            labels.append(label)
            count += 1
        if count == 0:
            raise SynthaugError(f"class folder {class_dir} has no images: expected PNG/JPEG/BMP files")
    return RawImages(images, np.asarray(labels, dtype=np.int64), [p.name for p in class_dirs],
                     str(root), skipped=skipped)


def _read_image(path: Path) -> np.ndarray:
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise SynthaugError(f"{path} is not an image file: expected {', '.join(IMAGE_SUFFIXES)} "
                            f"(or pass --skip-bad-files)")
    try:
        with Image.open(path) as img:
            img.load()
            rgb = img.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise SynthaugError(f"cannot decode image {path}: {err} (or pass --skip-bad-files)") from None
    return np.asarray(rgb)


def read_torch_dataset(dataset: Any) -> RawImages:
    """Any map-style dataset of ``(image, label)``: PIL images, HWC/HW arrays, or CHW tensors
    (uint8, or float in [0, 1])."""
    import torch

    images, labels = [], []
    for i in range(dataset_length(dataset)):
        image, label = dataset_item(dataset, i)
        if isinstance(label, torch.Tensor):
            label = label.item()
        if isinstance(label, (bool, float)) or not isinstance(label, (int, np.integer)):
            raise SynthaugError(f"dataset item {i}: expected an integer label, got {label!r}")
        images.append(_array_from_item(image, i))
        labels.append(int(label))
    names = getattr(dataset, "classes", None)
    labels_arr = np.asarray(labels, dtype=np.int64)
    class_names = check_labels(labels_arr, names, type(dataset).__name__)
    return RawImages(images, labels_arr, class_names, type(dataset).__name__)


def dataset_length(dataset: Any) -> int:
    """``len(dataset)`` of a non-empty map-style dataset, or a one-line error."""
    try:
        n = len(dataset)
    except TypeError:
        raise SynthaugError(f"expected a map-style dataset with __len__, got {type(dataset).__name__}") from None
    if n == 0:
        raise SynthaugError("expected a non-empty dataset, got 0 items")
    return n


def dataset_item(dataset: Any, i: int) -> tuple[Any, Any]:
    """``dataset[i]`` checked to be an ``(image, label)`` pair."""
    item = dataset[i]
    if not (isinstance(item, (tuple, list)) and len(item) == 2):
        size = f" of length {len(item)}" if isinstance(item, (tuple, list)) else ""
        raise SynthaugError(f"dataset item {i}: expected an (image, label) pair, got {type(item).__name__}{size}")
    return item


def _array_from_item(image: Any, i: int) -> np.ndarray:
    import torch

    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB") if image.mode not in ("L", "RGB") else image)
    chw = isinstance(image, torch.Tensor)
    arr = image.detach().cpu().numpy() if chw else np.asarray(image)
    if chw and arr.ndim == 3:
        arr = arr.transpose(1, 2, 0)
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3)):
        raise SynthaugError(f"dataset item {i}: expected an image (HW, HWC or CHW with 1 or 3 channels), "
                            f"got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        if arr.min() < 0 or arr.max() > 1:
            raise SynthaugError(f"dataset item {i}: expected float pixels in [0, 1], got "
                                f"[{arr.min():.3g}, {arr.max():.3g}] (undo normalisation first)")
        return np.round(arr * 255).astype(np.uint8)
    raise SynthaugError(f"dataset item {i}: expected uint8 or float pixels, got {arr.dtype}")


def read_source(source: Any, skip_bad_files: bool = False) -> RawImages:
    """Dispatch on what ``source`` is: a built-in name, a path, an ImageData or a torch Dataset."""
    from .images import ImageData

    if isinstance(source, ImageData):  # keeps its pixel scale (e.g. 0..16 for digits)
        return RawImages([source[i][0] for i in range(len(source))], source.labels.numpy(),
                         list(source.class_names), source.name, source.pixel_max)
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        if text in DIGITS_SPLITS:
            return read_digits(text)
        path = Path(text)
        if not path.exists():
            raise SynthaugError(f"data {text!r} not found: expected {', '.join(DIGITS_SPLITS)}, "
                                f"an image folder or an .npz file")
        if path.is_dir():
            return read_folder(path, skip_bad_files)
        if path.suffix.lower() == ".npz":
            return read_npz(path)
        raise SynthaugError(f"data {text!r}: expected an image folder or an .npz file, got a {path.suffix or 'plain'} file")
    return read_torch_dataset(source)
