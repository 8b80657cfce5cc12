"""Hyper-parameter dataclasses: declared ranges, every problem reported in one message."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from ..errors import SynthaugError

C = TypeVar("C")


def param(default: Any, *, low: float | None = None, high: float | None = None,
          choices: tuple | None = None, help: str = "") -> Any:
    """A config field with its valid range; ``low``/``high`` are inclusive."""
    meta = {"low": low, "high": high, "choices": choices, "help": help}
    if isinstance(default, (list, tuple)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


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
            if isinstance(v, bool) or not isinstance(v, (int, float)):
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
