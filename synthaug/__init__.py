"""synthaug: more labelled training images for people who have too few.

Fit a class-conditional generator on a labelled image dataset, ship it as a self-describing
ONNX file, and mix its samples into training.

Example (a deliberately tiny fit; the default is ``steps=3000`` at full width):
    >>> import synthaug, tempfile
    >>> out = tempfile.mkdtemp() + "/digits"
    >>> run = synthaug.fit("digits", out=out, steps=2, config={"g_width": 8, "d_width": 8}, progress=False)
    >>> sampler = synthaug.load(out)
    >>> sampler.sample([3, 3, 7], seed=0).shape
    torch.Size([3, 1, 8, 8])
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._version import __version__
from .errors import SynthaugError

if TYPE_CHECKING:  # what the lazy names below resolve to, for type checkers and the API docs
    from exporters.onnx import export
    from .augment import SyntheticDataset, SyntheticMix, cosine_schedule, linear_schedule, synthetic_weight
    from .card import CardError, GeneratorCard
    from .data import ImageData, load_data
    from .evaluation.pipeline import EvalReport, evaluate
    from .models import create_model, list_models, register_model
    from .run import Run
    from .runtime import FilteredSampler, OnnxSampler, Sampler, TorchSampler
    from .runtime.load import load
    from .train.fit import fit

# Where each public name lives. They are imported on first use (PEP 562), so that
# ``import synthaug.runtime`` (the deploy side) runs no training code and ``import synthaug``
# costs little beyond torch's own import.
_PUBLIC = {
    "fit": ".train", "load": ".runtime", "evaluate": ".evaluation", "EvalReport": ".evaluation", "Run": ".run",
    "Sampler": ".runtime", "TorchSampler": ".runtime", "OnnxSampler": ".runtime", "FilteredSampler": ".runtime",
    "GeneratorCard": ".card", "CardError": ".card", "SyntheticDataset": ".augment", "SyntheticMix": ".augment",
    "synthetic_weight": ".augment", "linear_schedule": ".augment", "cosine_schedule": ".augment",
    "list_models": ".models", "register_model": ".models", "create_model": ".models",
    "load_data": ".data", "ImageData": ".data", "export": "exporters.onnx",
}

__all__ = ["__version__", "SynthaugError", *_PUBLIC]


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'synthaug' has no attribute {name!r}")
    module = _PUBLIC[name]
    value = getattr(importlib.import_module(module, __name__ if module.startswith(".") else None), name)
    globals()[name] = value  # found directly next time
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
