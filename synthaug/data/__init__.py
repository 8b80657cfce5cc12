"""Labelled image sources: built-in ``digits``, image folders, ``.npz`` files, torch Datasets."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from ..errors import SynthaugError
from .images import ImageData, native_size, resolve_image_size, stratified_split, to_tensor
from .sources import DIGITS_SPLITS, read_source

__all__ = ["ImageData", "load_data", "stratified_split", "DIGITS_SPLITS"]

log = logging.getLogger("synthaug")


def load_data(source: Any, image_size: int | None = None, channels: int | None = None,
              skip_bad_files: bool = False, supported_sizes: Sequence[int] | None = None) -> ImageData:
    """Read ``source`` into memory as square uint8 images.

    ``image_size=None`` keeps the data's own size when ``supported_sizes`` allows it, else takes
    the next supported size up.

    Example:
        >>> data = load_data("digits")
        >>> len(data), data.image_shape, data.pixel_max
        (1797, (1, 8, 8), 16)
    """
    if channels not in (None, 1, 3):
        raise SynthaugError(f"expected channels 1 or 3, got {channels}")
    raw = read_source(source, skip_bad_files)
    if raw.skipped:
        log.warning("skipped %d bad file(s), e.g. %s", len(raw.skipped), raw.skipped[0])
    native = native_size(raw.images)
    if image_size is None:
        image_size = resolve_image_size(native, supported_sizes) if supported_sizes else native
    elif supported_sizes and image_size not in supported_sizes:
        raise SynthaugError(f"cannot produce {image_size}x{image_size} images: expected --image-size "
                            f"among {', '.join(map(str, supported_sizes))}")
    images = to_tensor(raw.images, image_size, channels)
    import torch

    return ImageData(images, torch.as_tensor(raw.labels, dtype=torch.int64), raw.class_names,
                     raw.name, raw.pixel_max, raw.skipped)
