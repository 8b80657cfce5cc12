"""Generator weights on disk: safetensors with the card in its metadata.

A weights file is untrusted input. Before anything is allocated, :func:`load_generator` bounds
the header, validates the card (see the bounds in :mod:`synthaug.card`), builds the generator on
the ``meta`` device (no memory) and checks the file's tensor table (names, shapes, dtypes) and
size against it; only then does it build the real module and read the tensors.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .atomic import atomic_write
from .card import MAX_CARD_BYTES, METADATA_KEY, CardError, GeneratorCard, few_names
from .errors import SynthaugError, first_line
from .models import ConditionalGenerator, create_generator

#: Longest safetensors header accepted (its JSON holds the tensor table and the card): the card's
#: limit twice over (JSON escaping inside a string) plus room for thousands of tensor entries.
MAX_HEADER_BYTES = 2 * MAX_CARD_BYTES + 2**20
#: safetensors' dtype names, for comparing a file's tensor table with the module's.
_SAFETENSORS_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
                       torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
                       torch.uint8: "U8", torch.bool: "BOOL"}


def save_generator(generator: ConditionalGenerator, card: GeneratorCard, path: str | Path) -> Path:
    """Write the generator's weights and card atomically to ``path`` (a ``.safetensors`` file)."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in generator.state_dict().items()}
    metadata = {METADATA_KEY: card.to_json()}
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def read_card(path: str | Path) -> GeneratorCard:
    """The card stored in a ``.safetensors`` file's metadata."""
    meta = _metadata(Path(path))
    if METADATA_KEY not in meta:
        raise CardError(f"{path}: no '{METADATA_KEY}' in the safetensors metadata: not a synthaug generator")
    return GeneratorCard.from_json(meta[METADATA_KEY], source=str(path))


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> tuple[ConditionalGenerator, GeneratorCard]:
    """Rebuild the generator a ``.safetensors`` file describes, in eval mode on ``device``.

    Nothing is allocated before the file's tensors are known to be the ones the card's
    generator holds (checked on the ``meta`` device), so a crafted file cannot make it allocate
    more than the file itself holds.
    """
    card = read_card(path)
    check_weights_file(path, card, check_card_buildable(card))
    module = build_from_card(card)
    with safe_open(str(path), framework="pt") as fh:
        state = {k: fh.get_tensor(k) for k in fh.keys()}
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else str(err)
        raise SynthaugError(f"{path}: weights do not match the card's {card.family} config ({first})") from None
    return module.to(device).eval().requires_grad_(False), card


def build_from_card(card: GeneratorCard, device: str | torch.device | None = None) -> ConditionalGenerator:
    """An untrained generator with the architecture the card describes, on ``device`` (torch's
    default when ``None``); on ``"meta"`` it holds shapes only, no memory."""
    try:
        with torch.device(device) if device is not None else contextlib.nullcontext():
            return create_generator(card.family, card.config, tuple(card.image_shape), card.num_classes)
    except SynthaugError as err:
        raise SynthaugError(f"card describes a generator this synthaug cannot build: {err}") from None
    except (TypeError, ValueError, RuntimeError) as err:  # the card is untrusted: no traceback
        raise SynthaugError(f"card describes a generator this synthaug cannot build: {first_line(err)}") from None


def check_card_buildable(card: GeneratorCard) -> ConditionalGenerator:
    """The card's generator on the ``meta`` device (the family's image sizes and config ranges
    checked), after checking that it takes the noise the card describes."""
    module = build_from_card(card, "meta")
    spec = module.noise_spec()
    if list(spec["shape"]) != list(card.noise["shape"]) or spec["distribution"] != card.noise["distribution"]:
        raise SynthaugError(f"card's noise {card.noise['shape']} ~ {card.noise['distribution']} does not match "
                            f"its {card.family} generator's {spec['shape']} ~ {spec['distribution']}")
    return module


def check_weights_file(path: str | Path, card: GeneratorCard, meta_module: ConditionalGenerator) -> None:
    """Refuse a file whose tensor table or size is not exactly the generator's, reading the
    header only."""
    expected = {k: (list(v.shape), _SAFETENSORS_DTYPES.get(v.dtype, str(v.dtype)))
                for k, v in meta_module.state_dict().items()}
    with safe_open(str(path), framework="pt") as fh:
        found = {k: (list(fh.get_slice(k).get_shape()), fh.get_slice(k).get_dtype()) for k in fh.keys()}
    problem = _table_mismatch(expected, found)
    if problem:
        raise SynthaugError(f"{path}: weights do not match the card's {card.family} config ({problem})")
    tensor_bytes = sum(v.numel() * v.element_size() for v in meta_module.state_dict().values())
    size, limit = Path(path).stat().st_size, 8 + _header_length(Path(path)) + tensor_bytes
    if size > limit:
        raise SynthaugError(f"{path}: expected at most {limit} bytes for the card's {card.family} weights, "
                            f"got {size}")


def _table_mismatch(expected: dict[str, tuple], found: dict[str, tuple]) -> str:
    """The first few differences between two ``name -> (shape, dtype)`` tables, or ``""``."""
    missing, unexpected = sorted(expected.keys() - found.keys()), sorted(found.keys() - expected.keys())
    if missing or unexpected:
        parts = [f"{label} {few_names(names, 3)}" for label, names in (("missing", missing), ("unexpected", unexpected))
                 if names]
        return ", ".join(parts)
    for name in sorted(expected):
        if expected[name] != found[name]:
            (shape, dtype), (got_shape, got_dtype) = expected[name], found[name]
            return f"{name}: expected {dtype} {shape}, got {got_dtype} {got_shape}"
    return ""


def _metadata(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise SynthaugError(f"{path}: no such file (expected a .safetensors generator)")
    header = _header_length(path)
    if header > MAX_HEADER_BYTES:
        # safetensors itself accepts 100 MB of header JSON; a generator's is far smaller.
        raise SynthaugError(f"{path}: expected a safetensors header of at most {MAX_HEADER_BYTES} bytes, "
                            f"got {header}")
    try:
        with safe_open(str(path), framework="pt") as fh:
            return fh.metadata() or {}
    except Exception as err:  # safetensors raises its own error types, and OSError
        raise SynthaugError(f"{path}: not a readable safetensors file ({first_line(err)})") from None


def _header_length(path: Path) -> int:
    """The header length a safetensors file declares in its first 8 bytes (0 if it is shorter:
    safetensors then names the problem)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return 0
    return int.from_bytes(head, "little") if len(head) == 8 else 0



__all__ = ["save_generator", "read_card", "load_generator", "build_from_card", "check_card_buildable",
           "check_weights_file"]
