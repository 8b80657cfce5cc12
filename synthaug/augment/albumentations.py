"""An albumentations transform that swaps in a synthetic image of the sample's own class.

Needs albumentations 2.0.x (``pip install 'synthaug[albumentations]'``; 2.0.8 is its last MIT
release). The class label comes from a named target: ``Compose([...])(image=img, label=y)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import albumentations as A
import numpy as np
import torch

from ..errors import SynthaugError
from ..runtime import load
from ..runtime.file_kinds import ACCEPTED
from ..runtime.load import read_any_card
from ..validation import is_int

__all__ = ["MAX_POOL_BYTES", "MAX_POOL_SIZE", "SyntheticReplace"]

#: Most images per class one pool may hold.
MAX_POOL_SIZE = 100_000
#: Most memory one pool (float32, all classes) may take: it is drawn once in every process.
MAX_POOL_BYTES = 2**30


class SyntheticReplace(A.ImageOnlyTransform):
    """With probability ``p``, replace the image by a synthetic image of the sample's class.

    The generator is named by path (a run directory, ``.safetensors`` or ``.onnx``) and loaded
    lazily in each process, so the transform pickles into DataLoader workers and serialises with
    ``A.to_dict``/``A.from_dict``. The path is made absolute at construction, and the card's
    digest (:meth:`GeneratorCard.digest`) is stored with it as ``generator_digest``: a
    deserialised transform loads the same model whatever the current directory, and refuses
    another model found at that path. Each process draws ``pool_size`` images per class once (seeded
    by ``pool_seed``) and then picks among them with albumentations' own random generator; the
    picked image is resized to the input's size and converted to its dtype (uint8 in
    0..``pixel_max``, or float in [0, 1]) and channel count, and goes through the rest of the
    pipeline like any image.

    Example:
        >>> import albumentations as A, numpy as np, synthaug, tempfile
        >>> run = tempfile.mkdtemp() + "/run"
        >>> _ = synthaug.fit("digits", out=run, steps=1, config={"g_width": 8, "d_width": 8}, progress=False)
        >>> pipeline = A.Compose([SyntheticReplace(run, p=1.0, pool_size=4), A.HorizontalFlip(p=0.5)])
        >>> out = pipeline(image=np.zeros((8, 8), np.uint8), label=3)["image"]
        >>> out.shape, out.dtype, int(out.max()) <= 16
        ((8, 8), dtype('uint8'), True)
    """

    def __init__(self, generator_path: str, label_key: str = "label", pool_size: int = 64,
                 pool_seed: int = 0, pixel_max: int | None = None, p: float = 0.5,
                 generator_digest: str | None = None) -> None:
        super().__init__(p=p)
        if not _is_int(pool_size) or not 1 <= pool_size <= MAX_POOL_SIZE:
            raise SynthaugError(f"pool_size: expected an integer in 1..{MAX_POOL_SIZE}, got {pool_size!r}")
        if pixel_max is not None and (not _is_int(pixel_max) or not 1 <= pixel_max <= 255):
            raise SynthaugError(f"pixel_max: expected None or an integer in 1..255, got {pixel_max!r}")
        # Absolute now: a relative path would be resolved against whatever the current directory
        # is at first use, possibly in another process, and silently load another model.
        self.generator_path = str(Path(generator_path).expanduser().resolve())
        self.label_key = label_key
        self.pool_size = pool_size
        self.pool_seed = pool_seed
        self.pixel_max = pixel_max
        self._pool: torch.Tensor | None = None
        self._card = None
        if generator_digest is None and Path(self.generator_path).exists():
            generator_digest = self._read_card().digest()
        self.generator_digest = generator_digest

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("generator_path", "label_key", "pool_size", "pool_seed", "pixel_max", "generator_digest")

    @property
    def targets_as_params(self) -> list[str]:
        return [self.label_key]

    def __call__(self, *args: Any, force_apply: bool = False, **kwargs: Any) -> Any:
        if self.label_key not in kwargs:
            raise SynthaugError(f"SyntheticReplace needs the sample's class: call the pipeline as "
                                f"pipeline(image=img, {self.label_key}=label); got only {sorted(kwargs)}")
        return super().__call__(*args, force_apply=force_apply, **kwargs)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_pool"] = None  # each worker draws its own (identical) pool
        return state

    def pool(self) -> torch.Tensor:
        """``[num_classes, pool_size, C, H, W]`` float images in [0, 1], drawn once per process."""
        if self._pool is None:
            self._check_exists()
            sampler = load(self.generator_path)  # bounded by the file; the pool is checked first
            card = sampler.card
            if self.generator_digest is not None and card.digest() != self.generator_digest:
                raise SynthaugError(f"SyntheticReplace: {self.generator_path} holds another generator than the "
                                    f"one this transform was made with (card digest {card.digest()}, expected "
                                    f"{self.generator_digest}); pass generator_digest=None to accept it")
            self._check_pool_bytes(card)
            self._card = card
            self.generator_digest = card.digest()  # pinned from now on, and in to_dict
            k = card.num_classes
            labels = torch.arange(k).repeat_interleave(self.pool_size)
            images = sampler.sample(labels, seed=self.pool_seed).cpu()
            self._pool = images.reshape(k, self.pool_size, *images.shape[1:])
        return self._pool

    def _read_card(self):
        self._check_exists()
        return read_any_card(self.generator_path)

    def _check_exists(self) -> None:
        if not Path(self.generator_path).exists():
            raise SynthaugError(f"SyntheticReplace: generator {self.generator_path} not found (expected {ACCEPTED})")

    def _check_pool_bytes(self, card) -> None:
        image_bytes = 4 * card.image_shape[0] * card.image_shape[1] * card.image_shape[2]
        needed = card.num_classes * self.pool_size * image_bytes
        if needed > MAX_POOL_BYTES:
            most = max(1, MAX_POOL_BYTES // (card.num_classes * image_bytes))
            raise SynthaugError(f"SyntheticReplace: a pool of {self.pool_size} images for each of "
                                f"{card.num_classes} classes takes {needed} bytes, more than the {MAX_POOL_BYTES} "
                                f"allowed; expected pool_size <= {most}")

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        pool = self.pool()
        label = data[self.label_key]
        label = int(label.item() if hasattr(label, "item") else label)
        if not 0 <= label < pool.shape[0]:
            raise SynthaugError(f"SyntheticReplace: expected {self.label_key} in 0..{pool.shape[0] - 1} "
                                f"(the generator's classes), got {label}")
        return {"synthetic": pool[label, int(self.random_generator.integers(self.pool_size))]}

    def apply(self, img: np.ndarray, synthetic: torch.Tensor, **params: Any) -> np.ndarray:
        h, w = img.shape[:2]
        image = synthetic
        if tuple(image.shape[1:]) != (h, w):
            image = torch.nn.functional.interpolate(image[None], size=(h, w), mode="bilinear",
                                                    antialias=True, align_corners=False)[0]
        channels = 1 if img.ndim == 2 else img.shape[2]
        if image.shape[0] != channels:
            image = image.mean(0, keepdim=True) if channels == 1 else image.expand(channels, -1, -1)
        hwc = image.permute(1, 2, 0).numpy()
        if img.dtype == np.uint8:
            pixel_max = self.pixel_max or self._card.pixel_max
            hwc = np.round(np.clip(hwc, 0, 1) * pixel_max).astype(np.uint8)
        else:
            hwc = hwc.astype(img.dtype)
        return hwc[..., 0] if img.ndim == 2 else np.ascontiguousarray(hwc)


def _is_int(value: Any) -> bool:
    return is_int(value)
