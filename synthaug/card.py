"""The generator card: everything a consumer needs to use a fitted generator, and nothing more.

The card travels with the weights: as ``card.json`` in a run directory, in the safetensors
metadata (key ``synthaug.card``) and in the ONNX ``metadata_props`` (same key). It is plain
data: this module imports nothing else of synthaug, so any tool can read a card.

Example:
    >>> card = GeneratorCard(
    ...     family="dcgan", config={"latent_dim": 64}, image_shape=[1, 8, 8], num_classes=2,
    ...     class_names=["a", "b"], noise={"name": "noise", "shape": [64], "distribution": "normal"},
    ...     output={"dtype": "float32", "layout": "NCHW", "range": [0.0, 1.0], "pixel_max": 255},
    ... )
    >>> GeneratorCard.from_json(card.to_json()) == card
    True
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

#: Bump when a reader of an older version could misread a newer card.
FORMAT_VERSION = 1
#: The key under which the card JSON is stored in safetensors and ONNX metadata.
METADATA_KEY = "synthaug.card"
NOISE_DISTRIBUTIONS = ("normal", "uniform_0_1")


class CardError(ValueError):
    """A card is missing, malformed, or from a newer synthaug than this one."""


@dataclass
class GeneratorCard:
    """Describes a fitted class-conditional generator.

    Attributes:
        family: registry name of the generator family (``"dcgan"``, ...).
        config: the family's hyper-parameters, enough to rebuild the module.
        image_shape: ``[C, H, W]`` of one generated image.
        num_classes: number of classes; labels are ``0..num_classes-1``.
        class_names: one name per class, in label order.
        noise: the generator's noise input: ``name``, ``shape`` (per sample) and
            ``distribution`` (``normal`` or ``uniform_0_1``).
        output: ``dtype``, ``layout`` (``NCHW``), ``range`` (``[0, 1]``) and ``pixel_max``:
            multiply by it and round to get the dataset's integer pixel values.
        dataset: provenance: ``name``, ``fingerprint``, ``class_counts``.
        training: provenance: ``steps``, ``seed``, ``batch_size``.
        metrics: evaluation results, if any.
    """

    family: str
    config: dict[str, Any]
    image_shape: list[int]
    num_classes: int
    class_names: list[str]
    noise: dict[str, Any]
    output: dict[str, Any]
    dataset: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    synthaug_version: str = "unknown"

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise CardError("invalid generator card: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any, source: str = "card") -> GeneratorCard:
        if not isinstance(data, dict):
            raise CardError(f"{source}: expected a JSON object, got {type(data).__name__}")
        version = data.get("format_version")
        if not isinstance(version, int):
            raise CardError(f"{source}: expected an integer format_version, got {version!r}")
        if version > FORMAT_VERSION:
            raise CardError(
                f"{source}: card format_version {version} is newer than this synthaug supports "
                f"({FORMAT_VERSION}); upgrade synthaug"
            )
        names = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING}
        missing = sorted(required - data.keys())
        if missing:
            raise CardError(f"{source}: card is missing field(s) {', '.join(missing)}")
        unknown = sorted(data.keys() - names)
        if unknown:
            raise CardError(f"{source}: card has unknown field(s) {', '.join(unknown)}")
        try:
            return cls(**data)
        except CardError as err:
            raise CardError(f"{source}: {err}") from None

    @classmethod
    def from_json(cls, text: str, source: str = "card") -> GeneratorCard:
        try:
            data = json.loads(text)
        except (TypeError, json.JSONDecodeError) as err:
            raise CardError(f"{source}: card is not valid JSON ({err})") from None
        return cls.from_dict(data, source)

    def pixel_values(self) -> str:
        """Human description of how outputs map to the dataset's pixels."""
        return f"round(x * {self.output.get('pixel_max', 255)}) as uint8"


def _problems(card: GeneratorCard) -> list[str]:
    """Every structural problem of a card, so one message can name them all."""
    out = []
    if not isinstance(card.family, str) or not card.family:
        out.append(f"family must be a non-empty string, got {card.family!r}")
    if not isinstance(card.config, dict):
        out.append(f"config must be an object, got {type(card.config).__name__}")
    shape = card.image_shape
    if not (isinstance(shape, (list, tuple)) and len(shape) == 3
            and all(isinstance(s, int) and s > 0 for s in shape)):
        out.append(f"image_shape must be [C, H, W] of positive ints, got {shape!r}")
    if not isinstance(card.num_classes, int) or card.num_classes < 2:
        out.append(f"num_classes must be an int >= 2, got {card.num_classes!r}")
    elif not (isinstance(card.class_names, (list, tuple)) and len(card.class_names) == card.num_classes):
        out.append(f"class_names must list {card.num_classes} names, got {card.class_names!r}")
    noise = card.noise
    if not (isinstance(noise, dict) and {"name", "shape", "distribution"} <= noise.keys()):
        out.append(f"noise must have name, shape and distribution, got {noise!r}")
    elif noise["distribution"] not in NOISE_DISTRIBUTIONS:
        out.append(f"noise distribution must be one of {NOISE_DISTRIBUTIONS}, got {noise['distribution']!r}")
    if not (isinstance(card.output, dict) and "range" in card.output):
        out.append(f"output must give at least its range, got {card.output!r}")
    return out
