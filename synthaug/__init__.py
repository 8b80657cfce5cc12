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

from ._version import __version__
from .augment import (SyntheticDataset, SyntheticMix, cosine_schedule, linear_schedule, synthetic_weight)
from .card import CardError, GeneratorCard
from .data import ImageData, load_data
from .errors import SynthaugError
from .models import create_model, list_models, register_model
from .run import Run
from .runtime import FilteredSampler, OnnxSampler, Sampler, TorchSampler, load
from .train import fit

__all__ = [
    "__version__", "fit", "load", "evaluate", "EvalReport", "Run", "Sampler", "TorchSampler", "OnnxSampler",
    "GeneratorCard", "SyntheticDataset", "SyntheticMix", "FilteredSampler",
    "synthetic_weight", "linear_schedule", "cosine_schedule",
    "list_models", "register_model", "create_model", "load_data", "ImageData", "SynthaugError", "CardError",
]


def __getattr__(name: str):
    # evaluate/EvalReport bring scipy and the metrics: loaded on first use, not on `import synthaug`.
    if name in ("evaluate", "EvalReport"):
        from . import evaluation

        return getattr(evaluation, name)
    raise AttributeError(f"module 'synthaug' has no attribute {name!r}")
