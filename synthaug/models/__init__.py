"""Generator families. Importing this package registers the built-in ones."""

from . import dcgan  # noqa: F401  (registers "dcgan")
from . import pixelrnn  # noqa: F401  (registers "pixelrnn")
from . import gan  # noqa: F401  (registers "gan")
from . import vae  # noqa: F401  (registers "vae")
from .base import ConditionalGenerator, GeneratorTrainer
from .registry import Family, create_generator, create_model, get_family, list_models, register_model

__all__ = [
    "ConditionalGenerator", "GeneratorTrainer", "Family", "create_generator", "create_model",
    "get_family", "list_models", "register_model",
]
