"""Hyper-parameter dataclasses: declared ranges, every problem reported in one message.

A family's config holds two kinds of fields: the architecture (``param(..., architecture=True)``:
the shapes of the networks, what the card needs to rebuild the generator and ``Run.trainer()`` the
rest, e.g. ``latent_dim``, ``g_width``, ``d_width``) and training settings (optimiser, loss,
DiffAugment, EMA, semi-supervised weights). The card keeps them apart (:func:`split_config`): ``config`` holds the architecture only and
``training["hyperparameters"]`` the rest, so a release that adds a training knob writes cards the
releases before it still read (they build generators from ``config`` and never look inside
``training``).

Example:
    >>> from synthaug.models import get_family
    >>> arch, training = split_config(get_family("dcgan").config({"lr_g": 1e-4}))
    >>> sorted(arch), training["lr_g"]
    (['d_norm', 'd_width', 'embed_dim', 'g_width', 'latent_dim'], 0.0001)
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from ..errors import SynthaugError
from ..validation import is_real

__all__ = ["C", "build_config", "config_problems", "param", "split_config"]

C = TypeVar("C")


def param(default: Any, *, low: float | None = None, high: float | None = None,
          choices: tuple | None = None, help: str = "", architecture: bool = False) -> Any:
    """A config field with its valid range; ``low``/``high`` are inclusive. ``architecture``:
    part of the networks' shapes (the card's ``config``), not a training setting."""
    meta = {"low": low, "high": high, "choices": choices, "help": help, "architecture": architecture}
    if isinstance(default, (list, tuple)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def split_config(config: Any, values: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(architecture, training)``: the config's fields (or ``values``, e.g. with resolved
    choices, keyed like them) split by :func:`param`'s ``architecture`` flag."""
    values = dataclasses.asdict(config) if values is None else values
    arch_names = {f.name for f in dataclasses.fields(config) if f.metadata.get("architecture")}
    return ({k: v for k, v in values.items() if k in arch_names},
            {k: v for k, v in values.items() if k not in arch_names})


def config_problems(config: Any) -> list[str]:
    problems = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        low, high, choices = (f.metadata.get(k) for k in ("low", "high", "choices"))
        if choices is not None:
            if value not in choices:
                problems.append(f"{f.name} must be one of {', '.join(map(str, choices))}, got {value!r}")
            continue
        if low is None and high is None:
            continue
        if f.default is dataclasses.MISSING:  # a sequence field: fixed length, each item in range
            length = len(f.default_factory())
            if not isinstance(value, (list, tuple)) or len(value) != length:
                problems.append(f"{f.name} must be a list of {length} numbers in [{low}, {high}], got {value!r}")
                continue
            values, expected = value, float
        else:
            values, expected = [value], type(f.default)
        for v in values:
            if not is_real(v):
                problems.append(f"{f.name} must be a number, got {value!r}")
                break
            if expected is int and not isinstance(v, int):
                problems.append(f"{f.name} must be an integer, got {value!r}")
                break
            if (low is not None and v < low) or (high is not None and v > high):
                lo = "-inf" if low is None else low
                hi = "inf" if high is None else high
                problems.append(f"{f.name} must be in [{lo}, {hi}], got {value!r}")
                break
    return problems


def build_config(cls: type[C], overrides: dict[str, Any] | None, family: str) -> C:
    """Make ``cls`` from defaults plus ``overrides``; reject unknown keys and bad values at once."""
    overrides = dict(overrides or {})
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(overrides) - set(names))
    problems = [f"unknown parameter {k!r} (valid: {', '.join(names)})" for k in unknown]
    config = cls(**{k: v for k, v in overrides.items() if k in names})
    problems += config_problems(config)
    if problems:
        raise SynthaugError(f"invalid {family} config: " + "; ".join(problems))
    return config
