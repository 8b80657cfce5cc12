"""``synthaug.load``: a sampler from a run directory, a ``.safetensors`` or an ``.onnx`` file."""

from __future__ import annotations

from pathlib import Path

import torch

from ..card import GeneratorCard
from ..errors import SynthaugError
from ..layout import WEIGHTS_FILE
from .sampler import OnnxSampler, Sampler, TorchSampler


def load(path: str | Path, device: str | torch.device | None = None) -> Sampler:
    """The sampler a path describes: PyTorch for runs and ``.safetensors``, ONNX Runtime for ``.onnx``.

    Example:
        >>> import synthaug, tempfile
        >>> out = tempfile.mkdtemp() + "/run"
        >>> _ = synthaug.fit("digits", out=out, steps=1, config={"g_width": 8, "d_width": 8}, progress=False)
        >>> type(load(out)).__name__
        'TorchSampler'
        >>> load(out + "/generator.safetensors").sample([0, 1, 2], seed=0).shape
        torch.Size([3, 1, 8, 8])
    """
    from ..weights import load_generator

    path = model_file(path)
    if path.suffix == ".onnx":
        return OnnxSampler(str(path), device=device or "cpu")
    module, card = load_generator(path, device or "cpu")
    return TorchSampler(module, card)


def read_any_card(path: str | Path) -> GeneratorCard:
    """The card of a run directory, ``.safetensors`` or ``.onnx`` file, read (and checked against
    the file's weights table or graph) without loading the weights."""
    from ..weights import check_card_buildable, check_weights_file, read_card
    from .onnx_card import read_onnx_card

    path = model_file(path)
    if path.suffix == ".onnx":
        return read_onnx_card(path)
    card = read_card(path)
    check_weights_file(path, card, check_card_buildable(card))
    return card


def model_file(path: str | Path) -> Path:
    """The ``.safetensors`` or ``.onnx`` file a path names (a run directory names its weights)."""
    path = Path(path)
    if path.is_dir():
        weights = path / WEIGHTS_FILE
        if not weights.is_file():
            raise SynthaugError(f"{path}: expected a run directory holding {WEIGHTS_FILE}, found none")
        path = weights
    if path.suffix in (".onnx", ".safetensors"):
        return path
    if not path.exists():
        raise SynthaugError(f"{path}: no such file or directory (expected a run directory, .safetensors or .onnx)")
    raise SynthaugError(f"{path}: expected a run directory, .safetensors or .onnx file, got {path.suffix or 'no suffix'}")
