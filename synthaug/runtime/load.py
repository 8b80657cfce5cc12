"""``synthaug.load``: a sampler from a run directory, a ``.safetensors`` or an ``.onnx`` file."""

from __future__ import annotations

from pathlib import Path

import torch

from ..card import GeneratorCard
from .file_kinds import resolve
from .sampler import Sampler

__all__ = ["load", "read_any_card"]


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
    kind, path = resolve(path)
    return kind.sampler(path, device or "cpu")


def read_any_card(path: str | Path) -> GeneratorCard:
    """The card of a run directory, ``.safetensors`` or ``.onnx`` file, read (and checked against
    the file's weights table or graph) without loading the weights."""
    kind, path = resolve(path)
    return kind.read_card(path)
