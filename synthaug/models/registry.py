"""The one registry of generator families that the CLI, exporters, tests and benchmarks iterate.

Example:
    >>> from synthaug.models import list_models, create_generator
    >>> "dcgan" in list_models()
    True
    >>> g = create_generator("dcgan", {"latent_dim": 16}, image_shape=(1, 8, 8), num_classes=10)
    >>> g.noise_spec()["shape"]
    [16]
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import SynthaugError
from .base import ConditionalGenerator, GeneratorTrainer
from .config import build_config

__all__ = ["create_generator", "create_model", "Family", "get_family", "list_models", "register_model"]


@dataclass(frozen=True)
class Family:
    name: str
    config_cls: type
    generator_cls: type[ConditionalGenerator]
    trainer_cls: type[GeneratorTrainer]
    description: str

    def config(self, overrides: dict[str, Any] | None = None):
        return build_config(self.config_cls, overrides, self.name)


_FAMILIES: dict[str, Family] = {}


def register_model(name: str, *, config: type, generator: type[ConditionalGenerator],
                   description: str = "") -> Callable[[type[GeneratorTrainer]], type[GeneratorTrainer]]:
    """Class decorator registering a trainer (and its generator and config) under ``name``."""

    def decorate(trainer: type[GeneratorTrainer]) -> type[GeneratorTrainer]:
        if name in _FAMILIES:
            raise ValueError(f"generator family {name!r} is already registered")
        generator.family = name
        _FAMILIES[name] = Family(name, config, generator, trainer, description)
        return trainer

    return decorate


def list_models() -> list[str]:
    """Names of all registered generator families, sorted."""
    return sorted(_FAMILIES)


def get_family(name: str) -> Family:
    if name in _FAMILIES:
        return _FAMILIES[name]
    valid = list_models()
    close = difflib.get_close_matches(str(name), valid, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise SynthaugError(f"unknown model {name!r}: expected one of {', '.join(valid)}{hint}")


def create_model(name: str, config: dict[str, Any] | None, image_shape: tuple[int, int, int],
                 num_classes: int) -> GeneratorTrainer:
    """A trainer of family ``name`` (generator, critic, optimizers, EMA) ready for ``fit``."""
    family = get_family(name)
    return family.trainer_cls(family.config(config), tuple(image_shape), num_classes)


def create_generator(name: str, config: dict[str, Any] | None, image_shape: tuple[int, int, int],
                     num_classes: int) -> ConditionalGenerator:
    """Just the deployable generator of family ``name``, e.g. to load weights into."""
    family = get_family(name)
    return family.generator_cls(family.config(config), tuple(image_shape), num_classes)
