"""What ``SyntheticDataset(real, generator=...)`` stands for: a ready sampler, one loaded from a
path (run directory, ``.safetensors``, ``.onnx``), or one fitted on ``real`` on first use (a
registered family name, :mod:`synthaug.train.cache`).
"""

from __future__ import annotations

import os
from typing import Any

from torch.utils.data import Dataset

from ..errors import SynthaugError
from ..models.registry import list_models
from ..runtime.load import load
from ..runtime.sampler import Sampler
from ..train.cache import cached_fit

__all__ = ["resolve_generator"]


def resolve_generator(real: Dataset, generator: Any, sampler: Any, fit_options: dict[str, Any], *, seed: int,
                       progress: bool, channels: int) -> tuple[Sampler, Any]:
    """The sampler ``generator`` (or its old name ``sampler``) stands for, and the
    :class:`~synthaug.train.cache.CachedFit` when it was fitted here on ``real`` (a family
    name), else None."""
    if (generator is None) == (sampler is None):
        got = "both" if generator is not None else "neither"
        raise SynthaugError(f"expected exactly one of generator= and its old name sampler=, got {got}")
    given = generator if generator is not None else sampler
    # An existing path wins over a family name of the same spelling: it is what the user has on disk.
    if isinstance(given, str) and given in list_models() and not os.path.exists(given):
        fitted = cached_fit(real, given, unlabeled=fit_options["unlabeled"], steps=fit_options["fit_steps"],
                            seed=seed, cache_dir=fit_options["cache_dir"], progress=progress, channels=channels)
        return fitted.sampler, fitted
    fit_only = [name for name, value in fit_options.items() if value is not None]
    if fit_only:
        what = f"the path {os.fspath(given)!r}" if isinstance(given, (str, os.PathLike)) else \
            f"a ready {type(given).__name__}"
        verb = "applies" if len(fit_only) == 1 else "apply"
        raise SynthaugError(f"{', '.join(fit_only)}: {verb} only to a generator fitted on first use, expected "
                            f"generator=<family name> ({', '.join(list_models())}), got {what}")
    return _ready_sampler(given), None


def _ready_sampler(given: Any) -> Sampler:
    """A sampler as it is, or the one a run directory, ``.safetensors`` or ``.onnx`` path holds."""
    if isinstance(given, (str, os.PathLike)):
        if not os.path.exists(given):
            raise SynthaugError(f"generator: expected a registered family ({', '.join(list_models())}) or an "
                                f"existing run directory, .safetensors or .onnx file, got {os.fspath(given)!r}")
        return load(given)
    if not (hasattr(given, "card") and callable(getattr(given, "sample", None))):
        raise SynthaugError(f"generator: expected a Sampler, a path to a run directory, .safetensors or .onnx "
                            f"file, or a family name, got {type(given).__name__}")
    return given
