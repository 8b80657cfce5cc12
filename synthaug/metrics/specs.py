"""Turning what a user names (``small_cnn``, ``module:function``, a module, an ``.onnx`` file) into
objects, with one-line errors."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from torch import nn

from ..errors import SynthaugError, first_line
from ..metrics.classifier import CLASSIFIERS

__all__ = ["check_classifier", "classifier_factory", "import_object"]


def import_object(spec: str, what: str) -> Any:
    """The object ``module:attribute`` names (the module is imported; ``attribute`` may be dotted).

    Example:
        >>> import_object("math:pi", "constant")
        3.141592653589793
    """
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise SynthaugError(f"{what}: expected module:function, got {spec!r}")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as err:  # a user's module may raise anything on import, a SyntaxError included
        raise SynthaugError(f"{what} {spec!r}: importing module {module_name!r} failed: "
                            f"{type(err).__name__}: {first_line(err)}") from None
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise SynthaugError(f"{what} {spec!r}: module {module_name!r} has no attribute {attribute!r}") from None
        except Exception as err:  # a property or module __getattr__ that raises
            raise SynthaugError(f"{what} {spec!r}: reading {attribute!r} of module {module_name!r} failed: "
                                f"{type(err).__name__}: {first_line(err)}") from None
    return obj


def classifier_factory(spec: str | Callable[[int, int], nn.Module]) -> tuple[Callable[[int, int], nn.Module], str]:
    """``(factory, name)``: the classifier ``spec`` names; ``factory(channels, num_classes)``
    builds a fresh network that takes images in [0, 1]."""
    if callable(spec):
        return spec, getattr(spec, "__qualname__", type(spec).__name__)
    if not isinstance(spec, str):
        raise SynthaugError(f"classifier: expected {', '.join(CLASSIFIERS)}, module:function or a callable, "
                            f"got {type(spec).__name__}")
    if spec in CLASSIFIERS:
        return CLASSIFIERS[spec], spec
    if ":" not in spec:
        raise SynthaugError(f"classifier: expected {', '.join(CLASSIFIERS)} or module:function, got {spec!r}")
    factory = import_object(spec, "classifier")
    if not callable(factory):
        raise SynthaugError(f"classifier {spec!r}: expected a callable (channels, num_classes) -> nn.Module, "
                            f"got {type(factory).__name__}")
    return factory, spec


def check_classifier(factory: Callable[[int, int], nn.Module], name: str, channels: int, num_classes: int) -> None:
    """Fail early, in one line, if ``factory`` does not build a module."""
    try:
        model = factory(channels, num_classes)
    except Exception as err:  # a user's code may raise anything; report its first line
        raise SynthaugError(f"classifier {name}: building it with (channels={channels}, num_classes={num_classes}) "
                            f"failed: {first_line(err)}") from None
    if not isinstance(model, nn.Module):
        raise SynthaugError(f"classifier {name}: expected it to build an nn.Module, got {type(model).__name__}")

