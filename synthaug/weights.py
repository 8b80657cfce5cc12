"""Generator weights on disk: safetensors with the card in its metadata."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .atomic import atomic_write
from .card import METADATA_KEY, CardError, GeneratorCard
from .errors import SynthaugError
from .models import ConditionalGenerator, create_generator


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
    """Rebuild the generator a ``.safetensors`` file describes, in eval mode on ``device``."""
    card = read_card(path)
    module = build_from_card(card)
    with safe_open(str(path), framework="pt") as fh:
        state = {k: fh.get_tensor(k) for k in fh.keys()}
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else str(err)
        raise SynthaugError(f"{path}: weights do not match the card's {card.family} config ({first})") from None
    return module.to(device).eval().requires_grad_(False), card


def build_from_card(card: GeneratorCard) -> ConditionalGenerator:
    """An untrained generator with the architecture the card describes."""
    try:
        return create_generator(card.family, card.config, tuple(card.image_shape), card.num_classes)
    except SynthaugError as err:
        raise SynthaugError(f"card describes a generator this synthaug cannot build: {err}") from None


def _metadata(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise SynthaugError(f"{path}: no such file (expected a .safetensors generator)")
    try:
        with safe_open(str(path), framework="pt") as fh:
            return fh.metadata() or {}
    except Exception as err:  # safetensors raises its own error types, and OSError
        raise SynthaugError(f"{path}: not a readable safetensors file ({_first_line(err)})") from None


def _first_line(err: Exception) -> str:
    return (str(err).splitlines() or [type(err).__name__])[0]


__all__ = ["save_generator", "read_card", "load_generator", "build_from_card"]
