"""The in-memory dataset every reader produces, and the one resize/colour path they share."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import ExifTags, Image, ImageOps

from ..card import MAX_CLASSES, class_name_problems
from ..errors import SynthaugError

__all__ = ["ALPHA_BACKGROUND", "CHANNEL_KINDS", "SOURCE_KINDS", "channel_conversion", "check_labels",
           "count_conversions", "describe_conversions", "float_to_uint8", "held_out_counts", "ImageData",
           "native_size", "normalise_image", "output_channels", "per_class_subset", "resolve_image_size",
           "source_conversion", "stratified_split", "to_tensor"]


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
        conversions: what had to be converted while reading, as ``{kind: number of images}``
            (empty when every image was read as it was); the kinds are :data:`SOURCE_KINDS`, a
            PIL mode's own name (``"CMYK"``, ``"YCbCr"``, ...) and :data:`CHANNEL_KINDS`. One
            image can count under a source kind and a channel kind (an ``LA`` file read as RGB).
    """

    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]
    name: str
    pixel_max: int = 255
    skipped: list[str] = field(default_factory=list)
    conversions: dict[str, int] = field(default_factory=dict)

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


def per_class_subset(labels: torch.Tensor, counts: Sequence[int], seed: int) -> torch.Tensor:
    """Sorted indices of ``counts[c]`` images of each class ``c`` (all of a class with fewer),
    chosen by ``seed``: a few labels per class, or a long tail.

    Example:
        >>> labels = torch.tensor([0, 1, 0, 1, 0, 1])
        >>> idx = per_class_subset(labels, [1, 3], seed=0)
        >>> labels[idx].tolist().count(0), labels[idx].tolist().count(1), idx.tolist() == sorted(idx.tolist())
        (1, 3, True)
    """
    g = torch.Generator().manual_seed(seed)
    chosen = [torch.empty(0, dtype=torch.int64)]
    for c, n in enumerate(counts):
        idx = torch.nonzero(labels == c).flatten()
        chosen.append(idx[torch.randperm(len(idx), generator=g)[:n]])
    return torch.sort(torch.cat(chosen)).values


def stratified_split(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (rest, part): ``part`` takes ``fraction`` of each class (at least one when
    ``fraction > 0``), chosen by ``seed``; both sorted.

    ``rest`` always keeps at least one image of every class: a class of ``n`` images gives at
    most ``n - 1`` to ``part`` (none when it has a single image), so a held-out split never
    removes a class from training. :func:`held_out_counts` says how many each class gave.

    Example:
        >>> rest, part = stratified_split(torch.tensor([0, 0, 0, 0, 1, 1]), 0.5, seed=0)
        >>> len(rest), len(part), sorted(torch.tensor([0, 0, 0, 0, 1, 1])[part].tolist())
        (3, 3, [0, 0, 1])
        >>> labels = torch.tensor([0, 0, 0, 1])  # class 1 has a single image: it stays
        >>> rest, part = stratified_split(labels, 0.5, seed=0)
        >>> sorted(labels[rest].tolist()), held_out_counts(labels, part, 2)
        ([0, 1], [2, 0])
    """
    if fraction <= 0:
        return torch.arange(len(labels)), torch.empty(0, dtype=torch.int64)
    g = torch.Generator().manual_seed(seed)
    part = [torch.empty(0, dtype=torch.int64)]
    for c in torch.unique(labels):
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        take = min(max(1, round(fraction * len(idx))), len(idx) - 1)  # the class's last image stays
        part.append(idx[:take])
    chosen = torch.sort(torch.cat(part)).values
    mask = torch.ones(len(labels), dtype=torch.bool)
    mask[chosen] = False
    return torch.nonzero(mask).flatten(), chosen


def held_out_counts(labels: torch.Tensor, part: torch.Tensor, num_classes: int) -> list[int]:
    """How many images of each class ``part`` (indices into ``labels``) holds.

    Example:
        >>> held_out_counts(torch.tensor([0, 0, 0, 1]), torch.tensor([0, 2]), 3)
        [2, 0, 0]
    """
    return torch.bincount(labels[part], minlength=num_classes).tolist()


def check_labels(labels: np.ndarray, class_names: Sequence[str] | None, source: str) -> list[str]:
    """Validate integer labels against the class names (or infer names); return the names."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise SynthaugError(f"{source}: expected labels as a 1-D integer array, got {labels.dtype} of shape {labels.shape}")
    k = len(class_names) if class_names is not None else len(np.unique(labels))
    if k < 2:
        raise SynthaugError(f"{source}: expected at least 2 classes, got {k}")
    if k > MAX_CLASSES:  # the card could not hold them: fail before training, not at its first checkpoint
        raise SynthaugError(f"{source}: expected at most {MAX_CLASSES} classes, got {k}")
    bad = labels[(labels < 0) | (labels >= k)]
    if bad.size:
        raise SynthaugError(f"{source}: expected labels in 0..{k - 1} ({k} classes), got {int(bad[0])}")
    names = [str(n) for n in class_names] if class_names is not None else [str(i) for i in range(k)]
    problems = class_name_problems(names)
    if problems:
        raise SynthaugError(f"{source}: " + "; ".join(problems))
    return names


#: Transparent pixels are composited onto black: a pixel becomes colour × alpha, so what a fully
#: transparent pixel reads as never depends on the colour hidden under it.
ALPHA_BACKGROUND = 0

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def normalise_image(img: Image.Image, where: str, min_side: int | None = None) -> Image.Image:
    """``img`` upright, as 8-bit ``L`` or ``RGB``: the one decoding rule for files and PIL items.

    - EXIF orientation is applied (``ImageOps.exif_transpose``).
    - Alpha (``RGBA``, ``LA``, ``PA``, a palette's or a colour key's transparency) is composited
      onto black (:data:`ALPHA_BACKGROUND`): each pixel becomes colour × alpha.
    - 16-bit greyscale (``I;16``, or ``I`` holding 0..65535) is scaled over the full 16-bit
      range, ``v * 255 / 65535``: a 12-bit scan stored in 16 bits comes out dark, stretch it first.
    - Float (``F``) pixels in [0, 1] are scaled by 255, in [0, 255] kept; anything else (NaN,
      negative, above 255) is refused, since guessing a scale would silently change the data.

    ``min_side``: shrink by an integer box average while the shorter side stays at or above it,
    so a large file costs memory once, here, and not in every later step. ``where`` names the
    image in errors.

    Example:
        >>> grey16 = Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.uint16))
        >>> np.asarray(normalise_image(grey16, "x")).tolist()
        [[0, 128, 255]]
    """
    if img.getexif().get(ExifTags.Base.Orientation, 1) != 1:
        img = ImageOps.exif_transpose(img)
    img = _eight_bit(img, where)
    factor = min(img.size) // min_side if min_side else 1
    return img.reduce(factor) if factor > 1 else img


def _eight_bit(img: Image.Image, where: str) -> Image.Image:
    if img.mode in _SIXTEEN_BIT_MODES:
        arr = np.asarray(img).astype(np.int64)
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise SynthaugError(f"{where}: expected 16-bit pixel values in 0..65535, got "
                                f"[{arr.min()}, {arr.max()}]")
        return Image.fromarray(((arr + 128) // 257).astype(np.uint8))  # v * 255 / 65535, rounded
    if img.mode == "F":
        return Image.fromarray(float_to_uint8(np.asarray(img), where, allow_0_255=True))
    if "transparency" in img.info and img.mode in ("P", "L", "RGB"):
        img = img.convert("LA" if img.mode == "L" else "RGBA")
    if img.mode == "PA":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA"):
        colour = img.mode[:-1]
        flat = Image.new(colour, img.size, ALPHA_BACKGROUND)
        flat.paste(img.convert(colour), mask=img.getchannel("A"))
        return flat
    if img.mode in ("L", "RGB"):
        return img
    return img.convert("L" if img.mode == "1" else "RGB")


_ALPHA_NOTE = "alpha composited onto black"
#: The pixel formats :func:`normalise_image` converts, by the name :attr:`ImageData.conversions`
#: counts them under, each with the note the load warning adds (in the order it lists them):
#:
#: - ``palette``: a ``P`` image without transparency, expanded to its palette's colours;
#: - ``palette+alpha``: ``PA``, or ``P`` with a transparent index;
#: - ``greyscale+alpha``: ``LA``, or ``L`` with a transparent grey level;
#: - ``RGBA``: ``RGBA``, or ``RGB`` with a transparent colour;
#: - ``16-bit``: ``I;16`` or ``I`` greyscale; ``float``: ``F``; ``1-bit``: ``1`` (black and white).
#:
#: Alpha counts by the file's mode, whether or not a pixel is actually transparent. Any other
#: PIL mode (``CMYK``, ``YCbCr``, ``LAB``, ``HSV``, ...) is converted to RGB by PIL and counts
#: under its own name, listed after these.
SOURCE_KINDS = {"palette": "", "palette+alpha": _ALPHA_NOTE, "greyscale+alpha": _ALPHA_NOTE,
                "RGBA": _ALPHA_NOTE, "16-bit": "v * 255 / 65535", "float": "to 0..255", "1-bit": ""}
#: The channel conversions :func:`to_tensor` makes, listed last: ``colour -> greyscale`` (1
#: channel asked for, an image not grey) uses PIL's ITU-R 601-2 luma,
#: ``L = R * 299/1000 + G * 587/1000 + B * 114/1000``; ``greyscale -> colour`` (3 channels asked
#: for, or some images of the set in colour) repeats the grey level in R, G and B. An RGB image whose three
#: channels are equal is grey already: read as 1 channel it is not counted (the luma is exact).
CHANNEL_KINDS = {"colour -> greyscale": "luma: 0.299 R + 0.587 G + 0.114 B",
                 "greyscale -> colour": "grey repeated in 3 channels"}


def source_conversion(img: Image.Image) -> str | None:
    """The kind (see :data:`SOURCE_KINDS`) under which :func:`normalise_image` converts ``img``
    to 8-bit L or RGB; None when it is 8-bit L or RGB already.

    Example:
        >>> [source_conversion(Image.new(m, (1, 1))) for m in ("RGB", "P", "LA", "CMYK")]
        [None, 'palette', 'greyscale+alpha', 'CMYK']
    """
    keyed = "transparency" in img.info
    if img.mode in _SIXTEEN_BIT_MODES:
        return "16-bit"
    named = {"P": "palette+alpha" if keyed else "palette", "PA": "palette+alpha", "LA": "greyscale+alpha",
             "RGBA": "RGBA", "F": "float", "1": "1-bit",
             "L": "greyscale+alpha" if keyed else None, "RGB": "RGBA" if keyed else None}
    return named.get(img.mode, img.mode)


def float_to_uint8(arr: np.ndarray, where: str, allow_0_255: bool = False) -> np.ndarray:
    """Float pixels -> uint8: [0, 1] scaled by 255 (and, when allowed, [0, 255] kept)."""
    if arr.size == 0:
        return arr.astype(np.uint8)
    finite = np.isfinite(arr)
    if not finite.all():
        raise SynthaugError(f"{where}: expected finite float pixels, got {float(arr[~finite][0])}")
    lo, hi = float(arr.min()), float(arr.max())
    if lo >= 0 and hi <= 1:
        return np.round(arr * 255).astype(np.uint8)
    if allow_0_255 and lo >= 0 and hi <= 255:
        return np.round(arr).astype(np.uint8)
    expected = "[0, 1] or [0, 255]" if allow_0_255 else "[0, 1]"
    raise SynthaugError(f"{where}: expected float pixels in {expected}, got [{lo:.3g}, {hi:.3g}]"
                        + ("" if allow_0_255 else " (undo normalisation first)"))


def resolve_image_size(native: int, supported: Sequence[int]) -> int:
    """The size to train at when the user gave none: native if possible, else the next one up."""
    if native in supported:
        return native
    larger = [s for s in supported if s >= native]
    return min(larger) if larger else max(supported)


def native_size(shorter_sides: Iterable[int]) -> int:
    """The most common of the images' shorter sides (the size the data is "at")."""
    return Counter(shorter_sides).most_common(1)[0][0]


def to_tensor(images: Sequence[np.ndarray], size: int, channels: int | None) -> torch.Tensor:
    """HWC (or HW) uint8 arrays of any sizes -> uint8 ``[N, C, size, size]``.

    Non-square images are centre-cropped to a square first. ``channels=None`` keeps greyscale
    data greyscale (1) and colour data colour (3).
    """
    channels = output_channels(images, channels)
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


def output_channels(images: Sequence[np.ndarray], channels: int | None) -> int:
    """``channels``, or when None: 1 if every image is grey, else 3 (what :func:`to_tensor` makes)."""
    if channels is not None:
        return channels
    return 1 if all(_is_grey(a) for a in images) else 3


def channel_conversion(arr: np.ndarray, channels: int) -> str | None:
    """The kind (see :data:`CHANNEL_KINDS`) under which :func:`to_tensor` turns ``arr`` into
    ``channels`` channels; None when it keeps its own."""
    if channels == 1 and not _is_grey(arr):
        return "colour -> greyscale"
    if channels == 3 and (arr.ndim == 2 or arr.shape[2] == 1):
        return "greyscale -> colour"
    return None


def count_conversions(source_kinds: Sequence[str | None], images: Sequence[np.ndarray],
                      channels: int) -> tuple[dict[str, int], int]:
    """``({kind: images}, images converted)`` for arrays decoded as ``source_kinds`` says (one
    kind or None per image; empty: none converted) and then made ``channels`` channels. Kinds
    come in the order :data:`SOURCE_KINDS`, other modes (by name), :data:`CHANNEL_KINDS`.

    Example:
        >>> grey, rgb = np.zeros((2, 2), np.uint8), np.full((2, 2, 3), [0, 1, 2], np.uint8)
        >>> count_conversions(["CMYK", None, "palette"], [rgb, grey, rgb], channels=3)
        ({'palette': 1, 'CMYK': 1, 'greyscale -> colour': 1}, 3)
    """
    per_image = [[kind for kind in (source, channel_conversion(arr, channels)) if kind]
                 for source, arr in zip(list(source_kinds) or [None] * len(images), images)]
    counts = Counter(kind for kinds in per_image for kind in kinds)
    known = list(SOURCE_KINDS)
    order = known + sorted(set(counts) - set(known) - set(CHANNEL_KINDS)) + list(CHANNEL_KINDS)
    return {kind: counts[kind] for kind in order if counts[kind]}, sum(1 for kinds in per_image if kinds)


def describe_conversions(conversions: dict[str, int], converted: int, total: int, shape: Sequence[int]) -> str:
    """The one line that says what was converted, e.g. ``converted 3 of 10 image(s) to 3x8x8 RGB:
    2 palette, 1 RGBA (alpha composited onto black)``.

    Example:
        >>> describe_conversions({"colour -> greyscale": 4}, 4, 4, (1, 8, 8))
        'converted 4 of 4 image(s) to 1x8x8 greyscale: 4 colour -> greyscale (luma: 0.299 R + 0.587 G + 0.114 B)'
    """
    notes = {**SOURCE_KINDS, **CHANNEL_KINDS}
    parts = [f"{n} {kind}" + (f" ({notes[kind]})" if notes.get(kind) else "") for kind, n in conversions.items()]
    colour = "greyscale" if shape[0] == 1 else "RGB"
    return f"converted {converted} of {total} image(s) to {'x'.join(map(str, shape))} {colour}: {', '.join(parts)}"


def _square(arr: np.ndarray) -> np.ndarray:
    h, w = arr.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return arr[top:top + s, left:left + s]


def _is_grey(arr: np.ndarray) -> bool:
    if arr.ndim == 2 or arr.shape[2] == 1:
        return True
    return bool((arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all())
