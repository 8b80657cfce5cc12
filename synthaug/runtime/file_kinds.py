"""The one table of model file kinds: how each is recognised, how its card is read, which
sampler it gives and whether it can be exported.

Every place that takes "a run directory, ``.safetensors`` or ``.onnx``" (``synthaug.load``,
``synthaug info``, ``SyntheticReplace``, the ONNX exporter) dispatches through :func:`resolve`
or :func:`kind_of`, so a new kind is one row here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..errors import SynthaugError
from ..layout import WEIGHTS_FILE
from ..weights import check_card_buildable, check_weights_file, load_generator, read_card
from .onnx_card import read_onnx_card
from .sampler import OnnxSampler, TorchSampler

if TYPE_CHECKING:
    import torch

    from ..card import GeneratorCard
    from ..models import ConditionalGenerator
    from .sampler import Sampler

__all__ = ["ACCEPTED", "FILE_KINDS", "ONNX", "RUN_DIRECTORY", "SAFETENSORS", "FileKind", "kind_of", "resolve"]

#: What :func:`resolve` accepts, in the words its errors use.
ACCEPTED = "a run directory, .safetensors or .onnx"


@dataclass(frozen=True)
class FileKind:
    name: str
    #: The suffix that marks a file of this kind; ``None`` marks a directory.
    suffix: str | None
    #: The card, checked against the file's weights table or graph, without loading the weights.
    read_card: Callable[[Path], GeneratorCard]
    #: The sampler ``synthaug.load`` returns for this kind.
    sampler: Callable[[Path, str | torch.device], Sampler]
    #: ``(module, card)`` in torch, for kinds that hold torch weights (what the exporter needs).
    load_generator: Callable[[Path, str | torch.device], tuple[ConditionalGenerator, GeneratorCard]] | None = None

    def matches(self, path: Path) -> bool:
        return path.is_dir() if self.suffix is None else path.suffix == self.suffix


def _weights_in(run: Path) -> Path:
    weights = run / WEIGHTS_FILE
    if not weights.is_file():
        raise SynthaugError(f"{run}: expected a run directory holding {WEIGHTS_FILE}, found none")
    return weights


def _read_safetensors_card(path: Path) -> GeneratorCard:
    card = read_card(path)
    check_weights_file(path, card, check_card_buildable(card))
    return card


def _load_safetensors(path: Path, device: str | torch.device = "cpu") -> tuple[ConditionalGenerator, GeneratorCard]:
    return load_generator(path, device)


def _torch_sampler(path: Path, device: str | torch.device) -> Sampler:
    return TorchSampler(*_load_safetensors(path, device))


def _read_onnx_card(path: Path) -> GeneratorCard:
    return read_onnx_card(path)


def _onnx_sampler(path: Path, device: str | torch.device) -> Sampler:
    return OnnxSampler(str(path), device=device)


RUN_DIRECTORY = FileKind(
    "run directory", None,
    read_card=lambda p: _read_safetensors_card(_weights_in(p)),
    sampler=lambda p, device: _torch_sampler(_weights_in(p), device),
    load_generator=lambda p, device="cpu": _load_safetensors(_weights_in(p), device),
)
SAFETENSORS = FileKind(".safetensors", ".safetensors", _read_safetensors_card, _torch_sampler, _load_safetensors)
ONNX = FileKind(".onnx", ".onnx", _read_onnx_card, _onnx_sampler)

#: Checked in this order: a directory is a run directory whatever its name.
FILE_KINDS: tuple[FileKind, ...] = (RUN_DIRECTORY, SAFETENSORS, ONNX)


def kind_of(path: str | Path) -> FileKind | None:
    """The kind ``path`` names, or ``None``."""
    path = Path(path)
    return next((kind for kind in FILE_KINDS if kind.matches(path)), None)


def resolve(path: str | Path) -> tuple[FileKind, Path]:
    """The kind ``path`` names, and the path; a :class:`SynthaugError` naming what is accepted if none."""
    path = Path(path)
    kind = kind_of(path)
    if kind is not None:
        return kind, path
    if not path.exists():
        raise SynthaugError(f"{path}: no such file or directory (expected {ACCEPTED})")
    raise SynthaugError(f"{path}: expected {ACCEPTED} file, got {path.suffix or 'no suffix'}")
