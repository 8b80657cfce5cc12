"""Raw image formats of real datasets, so synthetic items can be handed out in the same one.

Pools hold synthetic images as uint8 ``[C, H, W]`` tensors; :class:`ItemFormat` turns one
into what the real dataset yields: an HWC/HW uint8 or float numpy array (albumentations,
OpenCV), a CHW uint8 or float tensor (torchvision v2), or a PIL image. :class:`LabelFormat`
does the same for labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..errors import SynthaugError

__all__ = ["FORMATS", "ItemFormat", "LabelFormat"]

FORMATS = ("numpy", "tensor", "pil")


@dataclass(frozen=True)
class ItemFormat:
    kind: str             # numpy | tensor | pil
    dtype: str            # uint8 | float32 | float64 (numpy/tensor); the PIL mode for pil
    channels_last: bool   # numpy HWC; False for tensors (CHW)
    squeeze: bool         # a 2-D (HW) array for one channel
    shape_chw: tuple[int, int, int]

    @classmethod
    def detect(cls, image: Any) -> ItemFormat:
        """The format of one real image."""
        if isinstance(image, Image.Image):
            if image.mode not in ("L", "RGB"):
                raise SynthaugError(f"expected PIL images in mode L or RGB, got mode {image.mode}")
            c = 1 if image.mode == "L" else 3
            return cls("pil", image.mode, True, False, (c, image.height, image.width))
        if isinstance(image, torch.Tensor):
            if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[0] not in (1, 3)):
                raise SynthaugError(f"expected image tensors CHW with 1 or 3 channels, got shape {tuple(image.shape)}")
            dtype = str(image.dtype).replace("torch.", "")
            shape = (1, *image.shape) if image.ndim == 2 else tuple(image.shape)
            return cls("tensor", _check_dtype(dtype), False, image.ndim == 2, shape)
        if isinstance(image, np.ndarray):
            if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3)):
                raise SynthaugError(f"expected image arrays HW or HWC with 1 or 3 channels, got shape {image.shape}")
            h, w = image.shape[:2]
            c = 1 if image.ndim == 2 else image.shape[2]
            return cls("numpy", _check_dtype(str(image.dtype)), True, image.ndim == 2, (c, h, w))
        raise SynthaugError(f"expected images as numpy arrays, torch tensors or PIL images, "
                            f"got {type(image).__name__}")

    def convert(self, chw: torch.Tensor, pixel_max: int) -> Any:
        """One pool image (uint8 ``[C, H, W]`` in 0..pixel_max) in this format."""
        if self.kind == "pil":
            arr = chw.permute(1, 2, 0).numpy()
            return Image.fromarray(arr[..., 0] if self.dtype == "L" else arr)
        t = chw if self.dtype == "uint8" else chw.to(getattr(torch, self.dtype)) / pixel_max
        if self.squeeze:
            t = t[0]
        elif self.channels_last:
            t = t.permute(1, 2, 0)
        return t.numpy().copy() if self.kind == "numpy" else t.clone()


@dataclass(frozen=True)
class LabelFormat:
    """The type of the real items' labels, so synthetic labels collate with them: a Python
    int, a numpy integer (or integer array) or an integer tensor (``TensorDataset``'s 0-d ones),
    of the same dtype and shape."""

    kind: str                  # int | numpy | tensor
    dtype: Any = None          # numpy or torch dtype (numpy, tensor)
    shape: tuple[int, ...] | None = ()  # None: a numpy scalar (np.int64), not an array

    @classmethod
    def detect(cls, label: Any) -> LabelFormat:
        """The format of one real label (one value: 0-d, or a shape with one element)."""
        if isinstance(label, torch.Tensor) and label.numel() == 1 and not label.dtype.is_floating_point:
            return cls("tensor", label.dtype, tuple(label.shape))
        if isinstance(label, (np.ndarray, np.integer)) and np.issubdtype(label.dtype, np.integer) \
                and label.size == 1:
            return cls("numpy", label.dtype, tuple(np.shape(label)) if isinstance(label, np.ndarray) else None)
        return cls("int")

    def convert(self, label: int) -> Any:
        """One class index in this format."""
        if self.kind == "tensor":
            return torch.full(self.shape, label, dtype=self.dtype)
        if self.kind == "numpy":
            return self.dtype.type(label) if self.shape is None else np.full(self.shape, label, self.dtype)
        return label


def _check_dtype(dtype: str) -> str:
    if dtype not in ("uint8", "float32", "float64", "float16"):
        raise SynthaugError(f"expected uint8 or float images, got {dtype}")
    return dtype
