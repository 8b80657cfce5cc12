"""Labelled image sources: built-in ``digits``, image folders, ``.npz`` files, torch Datasets."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from ..errors import SynthaugError
from .images import (ALPHA_BACKGROUND, ImageData, count_conversions, describe_conversions, held_out_counts,
                     native_size, output_channels, per_class_subset, resolve_image_size, stratified_split,
                     to_tensor)
from .sources import BUILTIN_SETS, DIGITS_SPLITS, builtin_name, read_source

__all__ = ["ImageData", "load_data", "stratified_split", "per_class_subset", "held_out_counts", "DIGITS_SPLITS", "BUILTIN_SETS", "builtin_name",
           "ALPHA_BACKGROUND"]

log = logging.getLogger("synthaug")


def load_data(source: Any, image_size: int | None = None, channels: int | None = None,
              skip_bad_files: bool = False, supported_sizes: Sequence[int] | None = None) -> ImageData:
    """Read ``source`` into memory as square uint8 images.

    ``image_size=None`` keeps the data's own size (the most common shorter side) when
    ``supported_sizes`` allows it, else takes the next supported size up. Image files are
    decoded already shrunk towards that size, one at a time, so memory follows the output size
    and not the files' resolution (see :func:`synthaug.data.images.normalise_image` for how
    EXIF orientation, transparency, 16-bit and float files are read). What had to be converted
    (pixel formats, greyscale <-> colour) is counted in ``ImageData.conversions`` and said in one
    warning on the ``synthaug`` logger.

    Example:
        >>> data = load_data("digits")
        >>> len(data), data.image_shape, data.pixel_max
        (1797, (1, 8, 8), 16)
    """
    if channels not in (None, 1, 3):
        raise SynthaugError(f"expected channels 1 or 3, got {channels}")
    if image_size is not None and supported_sizes and image_size not in supported_sizes:
        raise SynthaugError(f"cannot produce {image_size}x{image_size} images: expected image_size=... "
                            f"among {', '.join(map(str, supported_sizes))}")

    def output_size(native: int) -> int:
        if image_size is not None:
            return image_size
        return resolve_image_size(native, supported_sizes) if supported_sizes else native

    raw = read_source(source, skip_bad_files, output_size)
    if raw.skipped:
        log.warning("skipped %d bad file(s), e.g. %s", len(raw.skipped), raw.skipped[0])
    native = raw.native_size
    if native is None:  # in-memory sources: the arrays are at their own size
        native = native_size(min(a.shape[:2]) for a in raw.images)
    channels = output_channels(raw.images, channels)
    images = to_tensor(raw.images, output_size(native), channels)
    conversions, converted = count_conversions(raw.source_kinds, raw.images, channels)
    if converted:
        log.warning("%s", describe_conversions(conversions, converted, len(raw.images), tuple(images.shape[1:])))
    import torch

    return ImageData(images, torch.as_tensor(raw.labels, dtype=torch.int64), raw.class_names,
                     raw.name, raw.pixel_max, raw.skipped, conversions)
