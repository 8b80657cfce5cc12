"""synthaug: more labelled training images for people who have too few.

Fit a class-conditional generator on a labelled image dataset, ship it as a self-describing
ONNX file, and mix its samples into training.

Example:
    >>> import synthaug  # doctest: +SKIP
    >>> run = synthaug.fit("digits", out="runs/digits")  # doctest: +SKIP
    >>> sampler = synthaug.load("runs/digits")  # doctest: +SKIP
    >>> images = sampler.sample([3, 3, 7], seed=0)  # doctest: +SKIP
"""

from ._version import __version__
from .card import CardError, GeneratorCard
from .data import ImageData, load_data
from .errors import SynthaugError
from .models import create_model, list_models, register_model
from .run import Run
from .runtime import OnnxSampler, Sampler, TorchSampler, load
from .train import fit

__all__ = [
    "__version__", "fit", "load", "Run", "Sampler", "TorchSampler", "OnnxSampler", "GeneratorCard",
    "list_models", "register_model", "create_model", "load_data", "ImageData", "SynthaugError", "CardError",
]
