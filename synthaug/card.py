"""The generator card: everything a consumer needs to use a fitted generator, and nothing more.

The card travels with the weights: as ``card.json`` in a run directory, in the safetensors
metadata (key ``synthaug.card``) and in the ONNX ``metadata_props`` (same key). It is plain
data: this module imports nothing else of synthaug but :mod:`synthaug.errors` (which imports
nothing), so any tool can read a card.

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
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

from .errors import SynthaugError

__all__ = ["DEFAULT_PIXEL_MAX", "FORMAT_VERSION", "IMAGE_CHANNELS", "MAX_CARD_BYTES", "MAX_CLASS_NAME_CHARS",
           "MAX_CLASSES", "MAX_IMAGE_SIDE", "MAX_NAME_CHARS", "MAX_NOISE_DIMS", "MAX_NOISE_NUMEL",
           "METADATA_KEY", "NOISE_DISTRIBUTIONS", "NOISE_KEYS", "OUTPUT_DTYPES", "OUTPUT_KEYS",
           "OUTPUT_LAYOUTS", "PIXEL_MAX_RANGE", "CardError", "class_name_problems", "few_names",
           "GeneratorCard"]

#: Bump when a reader of an older version could misread a newer card.
FORMAT_VERSION = 1
#: The key under which the card JSON is stored in safetensors and ONNX metadata.
METADATA_KEY = "synthaug.card"
NOISE_DISTRIBUTIONS = ("normal", "uniform_0_1")

# Bounds. A card arrives inside model files, which are untrusted input: every size that a
# reader allocates from (class count, image and noise shapes) is bounded here, in one place,
# and checked before anything is built. The family's own limits (image sizes, config ranges)
# are checked on top of these when the generator is built (on the ``meta`` device first).
#: Longest card JSON accepted, checked before parsing (10,000 class names of 255 characters fit).
MAX_CARD_BYTES = 4 * 2**20
#: Most classes a card may describe.
MAX_CLASSES = 10_000
#: Longest class name: a file name's limit, since folder names become class names.
MAX_CLASS_NAME_CHARS = 255
#: Longest family, noise input or version name.
MAX_NAME_CHARS = 64
#: Largest image height or width (the families themselves produce at most 64).
MAX_IMAGE_SIDE = 1024
IMAGE_CHANNELS = (1, 3)
#: Most noise values per sample (4 MiB of float32) and most noise dimensions.
MAX_NOISE_NUMEL = 2**20
MAX_NOISE_DIMS = 4
#: The white level of integer pixels: ``round(x * pixel_max)`` must fit in uint8.
PIXEL_MAX_RANGE = (1, 255)
DEFAULT_PIXEL_MAX = 255
OUTPUT_DTYPES = ("float32",)
OUTPUT_LAYOUTS = ("NCHW",)
NOISE_KEYS = ("name", "shape", "distribution")
OUTPUT_KEYS = ("dtype", "layout", "range", "pixel_max")


class CardError(SynthaugError):
    """A card is missing, malformed, or from a newer synthaug than this one (a
    :class:`~synthaug.errors.SynthaugError`, so ``except SynthaugError`` catches it too)."""


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
        output: ``dtype`` (``float32``), ``layout`` (``NCHW``), ``range`` (``[0, 1]``, the one
            required key) and ``pixel_max`` (an int in 1..255, 255 when absent): multiply by it
            and round to get the dataset's integer pixel values.
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
        if not _is_int(version):
            raise CardError(f"{source}: expected an integer format_version, got {_show(version)}")
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
            raise CardError(f"{source}: card has unknown field(s) {few_names(unknown)}")
        try:
            return cls(**data)
        except CardError as err:
            raise CardError(f"{source}: {err}") from None

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "card") -> GeneratorCard:
        # Measured before parsing: the text comes from a model file, and parsing allocates.
        if isinstance(text, (str, bytes)) and len(text) > MAX_CARD_BYTES:
            raise CardError(f"{source}: expected a card of at most {MAX_CARD_BYTES} bytes of JSON, "
                            f"got {len(text)}")
        try:
            data = json.loads(text)
        except (TypeError, json.JSONDecodeError) as err:
            raise CardError(f"{source}: card is not valid JSON ({err})") from None
        except RecursionError:
            raise CardError(f"{source}: card is not valid JSON (nested too deeply)") from None
        return cls.from_dict(data, source)

    @property
    def pixel_max(self) -> int:
        """The dataset's white level: outputs times this, rounded, are its integer pixels."""
        return int(self.output.get("pixel_max", DEFAULT_PIXEL_MAX))

    def pixel_values(self) -> str:
        """Human description of how outputs map to the dataset's pixels."""
        return f"round(x * {self.pixel_max}) as uint8"

    def digest(self) -> str:
        """A short hash of the card's canonical JSON: tells two fitted generators apart (dataset
        fingerprint, config, training run), and stays the same across export to ONNX."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]


def _problems(card: GeneratorCard) -> list[str]:
    """Every problem of a card, types and ranges included, so one message can name them all."""
    out = _name_problems("family", card.family)
    if not (isinstance(card.config, dict) and all(isinstance(k, str) for k in card.config)):
        out.append(f"config must be an object, got {_show(card.config)}")
    out += _image_shape_problems(card.image_shape)
    out += _class_problems(card.num_classes, card.class_names)
    out += _noise_problems(card.noise)
    out += _output_problems(card.output)
    for name in ("dataset", "training", "metrics"):
        if not isinstance(getattr(card, name), dict):
            out.append(f"{name} must be an object, got {_show(getattr(card, name))}")
    if not _is_int(card.format_version) or card.format_version < 1:
        out.append(f"format_version must be a positive int, got {_show(card.format_version)}")
    if not isinstance(card.synthaug_version, str) or len(card.synthaug_version) > MAX_NAME_CHARS:
        out.append(f"synthaug_version must be a string of at most {MAX_NAME_CHARS} characters, "
                   f"got {_show(card.synthaug_version)}")
    if not out:
        out += _size_problems(card)
    return out


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _show(value: Any, limit: int = 60) -> str:
    """``repr`` cut short: card values are untrusted and may be huge."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def few_names(names: list[str], n: int = 5) -> str:
    """A few names for a message, quoted where they hold non-printable characters."""
    shown = ", ".join(name if name.isprintable() and len(name) <= 60 else _show(name) for name in names[:n])
    return shown + (f" and {len(names) - n} more" if len(names) > n else "")


def _name_problems(field_name: str, value: Any) -> list[str]:
    if isinstance(value, str) and 0 < len(value) <= MAX_NAME_CHARS:
        return []
    return [f"{field_name} must be a non-empty string of at most {MAX_NAME_CHARS} characters, got {_show(value)}"]


def _image_shape_problems(shape: Any) -> list[str]:
    if not (isinstance(shape, (list, tuple)) and len(shape) == 3 and all(_is_int(s) for s in shape)):
        return [f"image_shape must be [C, H, W] of ints, got {_show(shape)}"]
    channels, height, width = shape
    out = []
    if channels not in IMAGE_CHANNELS:
        out.append(f"image_shape channels must be 1 or 3, got {channels}")
    if not (1 <= height <= MAX_IMAGE_SIDE and 1 <= width <= MAX_IMAGE_SIDE):
        out.append(f"image_shape height and width must be in 1..{MAX_IMAGE_SIDE}, got {height}x{width}")
    return out


def _class_problems(num_classes: Any, class_names: Any) -> list[str]:
    if not _is_int(num_classes) or not 2 <= num_classes <= MAX_CLASSES:
        return [f"num_classes must be an int in 2..{MAX_CLASSES}, got {_show(num_classes)}"]
    if not (isinstance(class_names, (list, tuple)) and len(class_names) == num_classes):
        count = f"{len(class_names)} names" if isinstance(class_names, (list, tuple)) else _show(class_names)
        return [f"class_names must list {num_classes} names, got {count}"]
    return class_name_problems(class_names)


def class_name_problems(names: list[str] | tuple[str, ...]) -> list[str]:
    """What is wrong with a list of class names as a card would hold them (for data readers too,
    so that a fit fails before training rather than at its first checkpoint)."""
    bad = [i for i, n in enumerate(names) if not (isinstance(n, str) and 0 < len(n) <= MAX_CLASS_NAME_CHARS)]
    if not bad:
        return []
    more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
    return [f"class_names must be non-empty strings of at most {MAX_CLASS_NAME_CHARS} characters, "
            f"got {_show(names[bad[0]])} at index {bad[0]}{more}"]


def _noise_problems(noise: Any) -> list[str]:
    if not (isinstance(noise, dict) and set(noise) == set(NOISE_KEYS)):
        keys = sorted(map(str, noise)) if isinstance(noise, dict) else _show(noise)
        return [f"noise must have exactly the keys {', '.join(NOISE_KEYS)}, got {keys}"]
    out = _name_problems("noise name", noise["name"])
    shape = noise["shape"]
    if not (isinstance(shape, (list, tuple)) and 1 <= len(shape) <= MAX_NOISE_DIMS
            and all(_is_int(s) and s > 0 for s in shape)):
        out.append(f"noise shape must list 1 to {MAX_NOISE_DIMS} positive ints, got {_show(shape)}")
    elif math.prod(shape) > MAX_NOISE_NUMEL:
        out.append(f"noise shape must hold at most {MAX_NOISE_NUMEL} values per sample, "
                   f"got {_show(shape)} ({math.prod(shape)})")
    if noise["distribution"] not in NOISE_DISTRIBUTIONS:
        out.append(f"noise distribution must be one of {NOISE_DISTRIBUTIONS}, got {_show(noise['distribution'])}")
    return out


def _output_problems(output: Any) -> list[str]:
    if not (isinstance(output, dict) and "range" in output):
        return [f"output must give at least its range, got {_show(output)}"]
    out = []
    unknown = sorted(map(str, set(output) - set(OUTPUT_KEYS)))
    if unknown:
        out.append(f"output has unknown key(s) {_show(unknown)} (expected {', '.join(OUTPUT_KEYS)})")
    low_high = output["range"]
    if not (isinstance(low_high, (list, tuple)) and len(low_high) == 2 and all(map(_is_number, low_high))
            and list(low_high) == [0, 1]):
        out.append(f"output range must be [0, 1], got {_show(low_high)}")
    if output.get("dtype", OUTPUT_DTYPES[0]) not in OUTPUT_DTYPES:
        out.append(f"output dtype must be one of {OUTPUT_DTYPES}, got {_show(output['dtype'])}")
    if output.get("layout", OUTPUT_LAYOUTS[0]) not in OUTPUT_LAYOUTS:
        out.append(f"output layout must be one of {OUTPUT_LAYOUTS}, got {_show(output['layout'])}")
    pixel_max = output.get("pixel_max", DEFAULT_PIXEL_MAX)
    low, high = PIXEL_MAX_RANGE
    if not _is_int(pixel_max) or not low <= pixel_max <= high:
        out.append(f"output pixel_max must be an int in {low}..{high}, got {_show(pixel_max)}")
    return out


def _size_problems(card: GeneratorCard) -> list[str]:
    """A card must serialise, and within the size every reader accepts."""
    try:
        size = len(card.to_json())
    except (TypeError, ValueError) as err:
        return [f"card must be plain JSON data ({err})"]
    if size > MAX_CARD_BYTES:
        return [f"card JSON must be at most {MAX_CARD_BYTES} bytes, got {size}"]
    return []
