"""The feature space for the quality metrics, without downloads.

By default a :class:`~synthaug.metrics.SmallCNN` is trained on the real training images and its
penultimate layer (64 values) is the feature space: small enough for FID at a few hundred
samples, and trained on the very data being judged (Inception features are a poor fit for 8x8
greyscale digits, and cannot be fetched offline anyway). Its weights are cached in the report
directory, keyed by the data's fingerprint and the training settings, so a second ``eval`` of the
same data skips the training.

A user may bring their own extractor instead: a torch module (or any callable on image
tensors), an ONNX file, or ``module:attribute`` naming either. It receives float images
``[N, C, H, W]`` in [0, 1] and returns one feature vector per image.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..atomic import atomic_write, temp_file_target
from ..data import ImageData
from ..errors import SynthaugError, first_line
from .classifier import SmallCNN, fit_steps
from .specs import import_object

__all__ = ["CACHE_DIR", "cache_path", "FeatureSpace", "is_cache_file_name", "read_cached_classifier",
           "reference_classifier", "small_cnn_space", "user_space", "write_cached_classifier"]

log = logging.getLogger("synthaug")

#: Subfolder of the report directory that holds cached feature networks; it alone does not make
#: the directory "non-empty" for ``--force``.
CACHE_DIR = "cache"
_CACHE_FORMAT = 1
_CACHE_NAME = re.compile(r"feature_net-[0-9a-f]+-\d+steps-seed-?\d+\.pt")


@dataclass
class FeatureSpace:
    """``features = space(images)``: float64 ``[N, dim]`` from float images in [0, 1]."""

    extract: Callable[[torch.Tensor], torch.Tensor]
    kind: str
    description: str
    dim: int = 0
    info: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 512

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> np.ndarray:
        chunks = [_to_numpy(self.extract(images[i:i + self.batch_size]), len(images[i:i + self.batch_size]))
                  for i in range(0, len(images), self.batch_size)]
        return np.concatenate(chunks) if chunks else np.empty((0, self.dim))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "description": self.description, "dim": self.dim, **self.info}


def _to_numpy(out: Any, n: int) -> np.ndarray:
    arr = out.detach().float().cpu().numpy() if isinstance(out, torch.Tensor) else np.asarray(out, dtype=np.float64)
    if arr.ndim == 0 or arr.shape[0] != n or arr.size == 0:
        raise SynthaugError(f"feature extractor: expected one feature vector per image ({n}), "
                            f"got an output of shape {tuple(arr.shape)}")
    return arr.reshape(n, -1).astype(np.float64)


def is_cache_file_name(name: str) -> bool:
    """Whether ``name`` is one :func:`cache_path` gives (or the temp file written on the way)."""
    return _CACHE_NAME.fullmatch(temp_file_target(name) or name) is not None


def cache_path(cache_dir: str | Path, data: ImageData, steps: int, seed: int) -> Path:
    """Where the feature network for ``data`` trained with these settings is cached."""
    digest = data.fingerprint().split(":")[-1]
    return Path(cache_dir) / CACHE_DIR / f"feature_net-{digest}-{steps}steps-seed{seed}.pt"


def reference_classifier(train: ImageData, steps: int, seed: int, cache_dir: str | Path | None = None,
                         batch_hook: Callable | None = None) -> tuple[SmallCNN, dict[str, Any]]:
    """A :class:`SmallCNN` trained on all of ``train`` (no augmentation, ``steps`` steps): the
    default feature network, and the real-data arm of CAS. Read from / written to the cache
    under ``cache_dir`` when one is given. Returns the network and where it came from."""
    path = cache_path(cache_dir, train, steps, seed) if cache_dir is not None else None
    info = {"fingerprint": train.fingerprint(), "steps": steps, "seed": seed,
            "cache": str(path) if path else None, "cached": False}
    if path is not None and path.is_file():
        model = read_cached_classifier(path, train, steps, seed)
        if model is not None:
            return model, {**info, "cached": True}
    model = fit_steps(train.as_float(), train.labels, train.num_classes, steps, seed=seed,
                      batch_hook=batch_hook, model_factory=SmallCNN)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_cached_classifier(path, model, train, steps, seed)
    return model, info


def write_cached_classifier(path: Path, model: SmallCNN, train: ImageData, steps: int, seed: int) -> None:
    """Write ``model`` (trained on ``train`` with these settings) atomically to ``path``, for
    :func:`read_cached_classifier`."""
    payload = {"format": _CACHE_FORMAT, "fingerprint": train.fingerprint(), "steps": steps, "seed": seed,
               "image_shape": list(train.image_shape), "num_classes": train.num_classes,
               "state": model.state_dict()}
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def read_cached_classifier(path: Path, train: ImageData, steps: int, seed: int) -> SmallCNN | None:
    """The cached network, or None (with a warning) when the file is unreadable or for other data."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        expected = (_CACHE_FORMAT, train.fingerprint(), steps, seed)
        if (payload["format"], payload["fingerprint"], payload["steps"], payload["seed"]) != expected:
            raise ValueError("settings differ")
        model = SmallCNN(train.image_shape[0], train.num_classes)
        model.load_state_dict(payload["state"])
    except Exception as err:  # a torn or foreign file: retrain rather than fail
        log.warning("ignoring cached feature network %s (%s); training it again", path, first_line(err))
        return None
    return model.eval()


def small_cnn_space(model: SmallCNN, info: dict[str, Any]) -> FeatureSpace:
    model.eval()
    return FeatureSpace(model.features, "small_cnn",
                        "penultimate layer of a SmallCNN trained on the real training images",
                        dim=model.net[-1].in_features, info=info)


def user_space(spec: Any, image_shape: tuple[int, int, int], probe: torch.Tensor) -> FeatureSpace:
    """A user's feature extractor (module, callable, ``.onnx`` path or ``module:attribute``),
    checked on ``probe`` images of the data's ``image_shape``."""
    if isinstance(spec, (str, Path)) and str(spec).endswith(".onnx"):
        space = _onnx_space(Path(spec), image_shape)
    elif isinstance(spec, str):  # module:attribute, an nn.Module or a function that returns one
        obj = import_object(spec, "feature extractor")
        if not isinstance(obj, nn.Module) and callable(obj):
            try:
                obj = obj()
            except Exception as err:  # the user's code
                raise SynthaugError(f"feature extractor {spec}: calling it with no arguments to build the "
                                    f"extractor failed: {first_line(err)}") from None
        space = _module_space(obj, spec)
    else:
        space = _module_space(spec, None)
    space.dim = _probe_dim(space, image_shape, probe)
    return space


def _module_space(module: Any, name: str | None) -> FeatureSpace:
    if not callable(module):
        raise SynthaugError(f"feature extractor: expected a torch module, a callable, an .onnx file or "
                            f"module:attribute, got {type(module).__name__}")
    if isinstance(module, nn.Module):
        module.eval()
        params = list(module.parameters())
        device = params[0].device if params else torch.device("cpu")
    else:
        device = torch.device("cpu")
    label = name or type(module).__name__
    return FeatureSpace(lambda x: module(x.to(device)), "module", f"user feature extractor {label}")


def _onnx_space(path: Path, image_shape: tuple[int, int, int]) -> FeatureSpace:
    if not path.is_file():
        raise SynthaugError(f"feature extractor {path}: no such file")
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime's errors share no public base class
        raise SynthaugError(f"feature extractor {path}: ONNX Runtime cannot load it ({first_line(err)})") from None
    first = session.get_inputs()[0]
    declared = list(first.shape)
    wanted = [None, *image_shape]
    if len(declared) != 4 or any(isinstance(d, int) and w is not None and d != w for d, w in zip(declared, wanted)):
        shown = ", ".join(str(d) if isinstance(d, int) else "N" for d in declared)
        raise SynthaugError(f"feature extractor {path}: expects input [{shown}], the data's images are "
                            f"[N, {', '.join(map(str, image_shape))}]")

    def extract(x: torch.Tensor) -> np.ndarray:
        return session.run(None, {first.name: x.detach().cpu().numpy().astype(np.float32)})[0]

    return FeatureSpace(extract, "onnx", f"user feature extractor {path}", info={"path": str(path)})


def _probe_dim(space: FeatureSpace, image_shape: tuple[int, int, int], probe: torch.Tensor) -> int:
    """Run the extractor on a few real images; one-line error if it rejects their shape."""
    shape = ", ".join(map(str, image_shape))
    try:
        out = space(probe)
    except SynthaugError:
        raise
    except Exception as err:  # the user's code: any error means it does not take these images
        raise SynthaugError(f"{space.description}: expected it to take images [N, {shape}] in [0, 1], "
                            f"it failed on them: {first_line(err)}") from None
    if not np.isfinite(out).all():
        raise SynthaugError(f"{space.description}: expected finite features, got NaN or inf")
    return int(out.shape[1])
