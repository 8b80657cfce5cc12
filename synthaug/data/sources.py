"""Readers: each turns one kind of source into raw images (HWC/HW uint8 arrays) and labels."""

from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import SynthaugError
from .images import ImageData, check_labels, float_to_uint8, native_size, normalise_image, source_conversion

__all__ = ["BUILTIN_SETS", "DIGITS_SPLITS", "IMAGE_SUFFIXES", "PHOTO_BANDS", "PHOTO_PATCH", "PHOTOS_SPLITS",
           "REDUCING_GAP", "builtin_name", "builtins_overlap", "dataset_item", "dataset_length", "RawImages",
           "read_digits", "read_folder", "read_npz", "read_photos", "read_source", "read_torch_dataset"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
#: A file is decoded shrunk to no less than this many times the output size before the final
#: bicubic resize (Pillow's own ``reducing_gap`` for thumbnails): close to resizing the full image.
REDUCING_GAP = 2
DIGITS_SPLITS = ("digits", "digits:train", "digits:test")
PHOTOS_SPLITS = ("photos", "photos:train", "photos:test")
#: Every built-in dataset name (``fit digits``, ``fit photos:train``): no file behind them.
BUILTIN_SETS = DIGITS_SPLITS + PHOTOS_SPLITS
#: photos: each of scikit-learn's two sample photographs cut into three horizontal bands (one
#: class each), and each band into non-overlapping 32x32 patches (overlap would leak test
#: pixels into training).
PHOTO_BANDS = ("top", "middle", "bottom")
PHOTO_PATCH = 32

log = logging.getLogger("synthaug")


def builtin_name(source: Any) -> str | None:
    """The built-in set ``source`` names, or None when it names anything else.

    A bare ``digits`` or ``photos`` that exists as a path (a user's folder or file in the working
    directory) is that path, not the built-in set: a user's data is never silently swapped
    for ours. ``NAME:train`` / ``NAME:test`` always name the built-in splits.

    Example:
        >>> builtin_name("digits:train"), builtin_name("my_folder"), builtin_name(3)
        ('digits:train', None, None)
    """
    if not isinstance(source, (str, os.PathLike)):
        return None
    text = os.fspath(source)
    if text not in BUILTIN_SETS or (":" not in text and os.path.lexists(text)):
        return None
    return text


def builtins_overlap(a: str, b: str) -> bool:
    """Whether two built-in set names share images: ``digits`` holds both of its splits.

    Example:
        >>> builtins_overlap("digits", "digits:train"), builtins_overlap("digits:train", "digits:test")
        (True, False)
    """
    family_a, _, split_a = a.partition(":")
    family_b, _, split_b = b.partition(":")
    return family_a == family_b and (not split_a or not split_b or split_a == split_b)


def _warn_shadowed(text: str) -> None:
    """Say once per read that a path named like a built-in set was read as the path."""
    if text in BUILTIN_SETS and ":" not in text:
        log.warning("reading %r as the path ./%s (it exists); the built-in set of that name is not used "
                    "(%s:train and %s:test always name the built-in splits)", text, text, text, text)


@dataclass
class RawImages:
    images: list[np.ndarray]
    labels: np.ndarray
    class_names: list[str]
    name: str
    pixel_max: int = 255
    skipped: list[str] = field(default_factory=list)
    #: The most common shorter side of the images as stored, when they were shrunk while read
    #: (image folders); None when ``images`` are at their own size.
    native_size: int | None = None
    #: Per image, the kind :func:`~synthaug.data.images.source_conversion` gave its pixel format
    #: (None: read as it was, as are a Dataset's arrays and tensors); empty when the reader
    #: converts no pixel formats (.npz, digits).
    source_kinds: list[str | None] = field(default_factory=list)


def read_digits(spec: str) -> RawImages:
    """The UCI handwritten digits shipped with scikit-learn: 1797 8x8 images, 17 grey levels.

    ``digits:train`` / ``digits:test`` are a stratified 75/25 split (seed 0), so generators can
    be fitted on one part and judged on the other.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    idx = _builtin_split(spec, bunch.target)
    return RawImages(list(bunch.images.astype(np.uint8)[idx]), bunch.target.astype(np.int64)[idx],
                     [str(i) for i in range(10)], spec, pixel_max=16)


def _builtin_split(spec: str, labels: np.ndarray) -> np.ndarray:
    """Sorted indices of a built-in set's ``NAME`` (all), ``NAME:train`` (75%) or ``NAME:test``
    (25%): a stratified split with seed 0, the same on every machine."""
    from sklearn.model_selection import train_test_split

    everything = np.arange(len(labels))
    if ":" not in spec:
        return everything
    idx_train, idx_test = train_test_split(everything, test_size=0.25, stratify=labels, random_state=0)
    return np.sort(idx_train if spec.endswith(":train") else idx_test)


def read_photos(spec: str) -> RawImages:
    """A small colour set from the two photographs scikit-learn ships (china, flower: 427x640
    RGB): 6 classes (photograph x band), 80 non-overlapping 32x32 patches each, 480 in all.

    ``photos:train`` / ``photos:test`` are a stratified 75/25 split (seed 0), as for digits.

    Example:
        >>> raw = read_photos("photos:train")
        >>> len(raw.images), raw.images[0].shape, raw.class_names[:2]
        (360, (32, 32, 3), ['china-top', 'china-middle'])
    """
    from sklearn.datasets import load_sample_images

    bunch = load_sample_images()
    images, labels, names = [], [], []
    for photo, path in zip(bunch.images, bunch.filenames):
        band_height = photo.shape[0] // len(PHOTO_BANDS)
        for b, band in enumerate(PHOTO_BANDS):
            names.append(f"{Path(path).stem}-{band}")
            top = b * band_height
            for y in range(top, top + band_height - PHOTO_PATCH + 1, PHOTO_PATCH):
                for x in range(0, photo.shape[1] - PHOTO_PATCH + 1, PHOTO_PATCH):
                    images.append(np.ascontiguousarray(photo[y:y + PHOTO_PATCH, x:x + PHOTO_PATCH]))
                    labels.append(len(names) - 1)
    idx = _builtin_split(spec, np.asarray(labels))
    return RawImages([images[i] for i in idx], np.asarray(labels, dtype=np.int64)[idx], names, spec, pixel_max=255)


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


def read_folder(root: Path, skip_bad_files: bool = False,
                pick_size: Callable[[int], int] | None = None) -> RawImages:
    """An image folder: one subfolder per class, PNG/JPEG/BMP/TIFF files of any size inside.

    Hidden files and folders (``.thumbnails``, ``.ipynb_checkpoints``) are left out at any depth.
    Memory is bounded by the output, not by the files: a first pass reads only the headers, for
    the native size and ``pick_size(native)`` (the size to train at; default: native), then each
    file is decoded and at once shrunk towards that size (see :func:`_read_image`).
    """
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise SynthaugError(f"image folder {root} has no class subfolders: expected one subfolder per class")
    if len(class_dirs) < 2:
        raise SynthaugError(f"image folder {root}: expected at least 2 classes (subfolders), got 1 ({class_dirs[0].name})")
    files, labels, sides, skipped = [], [], [], []
    for label, class_dir in enumerate(class_dirs):
        count = 0
        for path in _image_files(class_dir):
            side = _unless_bad(_shorter_side, path, skip_bad_files, skipped)
            if side is None:
                continue
            sides.append(side)
            files.append(path)
            labels.append(label)
            count += 1
        _check_not_empty(class_dir, count)
    native = native_size(sides)
    size = pick_size(native) if pick_size else native
    images, kept, kinds = [], [], []
    for path, label in zip(files, labels):
        read = _unless_bad(lambda p: _read_image(p, size), path, skip_bad_files, skipped)
        if read is None:
            continue
        image, kind = read
        images.append(image)
        kinds.append(kind)
        kept.append(label)
    kept_labels = np.asarray(kept, dtype=np.int64)
    for class_dir, count in zip(class_dirs, np.bincount(kept_labels, minlength=len(class_dirs))):
        _check_not_empty(class_dir, count)  # a class whose every file failed to decode
    return RawImages(images, kept_labels, [p.name for p in class_dirs],
                     str(root), skipped=skipped, native_size=native, source_kinds=kinds)


def _unless_bad(read: Callable[[Path], Any], path: Path, skip_bad_files: bool, skipped: list[str]) -> Any:
    """``read(path)``; with ``skip_bad_files``, ``None`` instead of its error (``path`` noted in
    ``skipped``)."""
    try:
        return read(path)
    except SynthaugError:
        if not skip_bad_files:
            raise
        skipped.append(str(path))
        return None


def _image_files(class_dir: Path) -> Iterator[Path]:
    """The files below ``class_dir``, sorted, minus hidden files and anything in hidden folders."""
    for path in sorted(class_dir.rglob("*")):
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(class_dir).parts):
            yield path


def _check_not_empty(class_dir: Path, count: int) -> None:
    if count == 0:
        raise SynthaugError(f"class folder {class_dir} has no images: expected PNG/JPEG/BMP/TIFF files")


def _shorter_side(path: Path) -> int:
    """The shorter side of an image file, from its header alone (nothing is decoded)."""
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise SynthaugError(f"{path} is not an image file: expected {', '.join(IMAGE_SUFFIXES)} "
                            f"(or pass skip_bad_files=True)")
    try:
        with Image.open(path) as img:
            return min(img.size)
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise SynthaugError(f"cannot decode image {path}: {err} (or pass skip_bad_files=True)") from None


def _read_image(path: Path, size: int) -> tuple[np.ndarray, str | None]:
    """Decode ``path`` as an 8-bit L or RGB array (and the kind of conversion that took, see
    :func:`~synthaug.data.images.source_conversion`), shrunk while its shorter side stays at or above
    ``REDUCING_GAP * size`` (files smaller than that keep their size): JPEGs are decoded at 1/2
    to 1/8 scale by the codec (``Image.draft``), other formats reduced by an integer box average
    right after decoding, so at most one full-resolution image is held at a time."""
    need = REDUCING_GAP * size
    try:
        with Image.open(path) as img:
            if img.format == "JPEG":
                img.draft(img.mode, (need, need))
            img.load()
            return np.asarray(normalise_image(img, str(path), min_side=need)), source_conversion(img)
    except SynthaugError:
        raise
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise SynthaugError(f"cannot decode image {path}: {err} (or pass skip_bad_files=True)") from None


def read_torch_dataset(dataset: Any) -> RawImages:
    """Any map-style dataset of ``(image, label)``: PIL images (decoded as
    :func:`~synthaug.data.images.normalise_image` says), HWC/HW arrays, or CHW tensors (uint8,
    or finite floats in [0, 1]).

    A label is an int, a 0-d tensor/array, or an exact one-hot vector (one 1, the rest 0; its
    length is then the class count unless the dataset has ``classes``). Soft labels are refused:
    a generator is fitted on hard classes.
    """
    images, labels, widths, kinds = [], [], set(), []
    for i in range(dataset_length(dataset)):
        image, label = dataset_item(dataset, i)
        index, width = _label_from_item(label, i)
        if width is not None:
            widths.add(width)
            if len(widths) > 1:
                raise SynthaugError(f"dataset item {i}: expected one-hot labels of one length, "
                                    f"got lengths {', '.join(map(str, sorted(widths)))}")
        images.append(_array_from_item(image, i))
        kinds.append(source_conversion(image) if isinstance(image, Image.Image) else None)
        labels.append(index)
    names = getattr(dataset, "classes", None)
    if names is None and widths:
        names = [str(k) for k in range(widths.pop())]
    labels_arr = np.asarray(labels, dtype=np.int64)
    class_names = check_labels(labels_arr, names, type(dataset).__name__)
    return RawImages(images, labels_arr, class_names, type(dataset).__name__, source_kinds=kinds)


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


def _label_from_item(label: Any, i: int) -> tuple[int, int | None]:
    """An item's class index, and the vector's length when the label came one-hot."""
    import torch

    if isinstance(label, (torch.Tensor, np.ndarray)):
        kind = "tensor" if isinstance(label, torch.Tensor) else "array"
        arr = label.detach().cpu().numpy() if isinstance(label, torch.Tensor) else label
        if arr.ndim == 1 and len(arr) > 1 and _is_one_hot(arr):
            return int(np.argmax(arr)), len(arr)
        if arr.size != 1:  # one element of any shape reads as that element, as it always has
            soft = " that is not one-hot (soft labels are not supported)" if arr.ndim == 1 else ""
            article = "a" if kind == "tensor" else "an"
            raise SynthaugError(f"dataset item {i}: expected an integer label (an int, a 0-d {kind} or a "
                                f"one-hot vector), got {article} {kind} of shape {tuple(arr.shape)}{soft}")
        label = arr.item()
    if isinstance(label, (bool, float)) or not isinstance(label, (int, np.integer)):
        raise SynthaugError(f"dataset item {i}: expected an integer label, got {label!r}")
    return int(label), None


def _is_one_hot(vector: np.ndarray) -> bool:
    if not (np.issubdtype(vector.dtype, np.number) or vector.dtype == np.bool_):
        return False
    values = vector.astype(np.float64)
    return bool(((values == 0) | (values == 1)).all() and values.sum() == 1)


def _array_from_item(image: Any, i: int) -> np.ndarray:
    import torch

    if isinstance(image, Image.Image):
        return np.asarray(normalise_image(image, f"dataset item {i}"))
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
        return float_to_uint8(arr, f"dataset item {i}")  # NaN and inf refused, not turned into 0
    raise SynthaugError(f"dataset item {i}: expected uint8 or float pixels, got {arr.dtype}")


def read_source(source: Any, skip_bad_files: bool = False,
                pick_size: Callable[[int], int] | None = None) -> RawImages:
    """Dispatch on what ``source`` is: a built-in name, a path, an ImageData or a torch Dataset.

    ``pick_size(native)`` gives the size the images will be resized to: readers that can decode
    smaller (image folders) use it to keep memory bounded by the output.
    """
    if isinstance(source, ImageData):  # keeps its pixel scale (e.g. 0..16 for digits)
        return RawImages([source[i][0] for i in range(len(source))], source.labels.numpy(),
                         list(source.class_names), source.name, source.pixel_max)
    builtin = builtin_name(source)
    if builtin in DIGITS_SPLITS:
        return read_digits(builtin)
    if builtin in PHOTOS_SPLITS:
        return read_photos(builtin)
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        _warn_shadowed(text)
        path = Path(text)
        if not path.exists():
            raise SynthaugError(f"data {text!r} not found: expected {', '.join(BUILTIN_SETS)}, "
                                f"an image folder or an .npz file")
        if path.is_dir():
            return read_folder(path, skip_bad_files, pick_size)
        if path.suffix.lower() == ".npz":
            return read_npz(path)
        raise SynthaugError(f"data {text!r}: expected an image folder or an .npz file, got a {path.suffix or 'plain'} file")
    return read_torch_dataset(source)
