"""Export a fitted generator to a self-describing ONNX file.

The graph takes ``noise`` (float32 ``[N, *card.noise.shape]``) and ``labels`` (int64 ``[N]``)
with a dynamic batch axis and returns ``images`` (float32 NCHW in [0, 1]). The generator card
is stored as JSON in ``metadata_props`` under ``synthaug.card``. Before the file is moved into
place it passes ``onnx.checker`` (``full_check=True``) and a parity check against torch on fresh
random inputs; a failing export leaves any earlier file at ``path`` untouched.

Example:
    >>> import synthaug, tempfile
    >>> out = tempfile.mkdtemp() + "/run"
    >>> _ = synthaug.fit("digits", out=out, steps=1, config={"g_width": 8, "d_width": 8}, progress=False)
    >>> result = export(out, out + "/model.onnx")
    >>> result.max_abs_diff < 1e-4
    True
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from synthaug.atomic import atomic_path, check_writable_target
from synthaug.card import METADATA_KEY, GeneratorCard
from synthaug.errors import SynthaugError
from synthaug.models import ConditionalGenerator
from synthaug.runtime import draw_noise
from synthaug.runtime.file_kinds import kind_of

__all__ = ["PARITY_TOLERANCE", "export", "ExportResult"]

PARITY_TOLERANCE = 1e-4


@dataclass
class ExportResult:
    path: Path
    max_abs_diff: float
    parity_batch: int
    opset: int
    #: Share of output values within ``tolerance`` of torch's.
    equal_fraction: float = 1.0

    def to_dict(self) -> dict:
        return {"path": str(self.path), "max_abs_diff": self.max_abs_diff,
                "parity_batch": self.parity_batch, "opset": self.opset, "equal_fraction": self.equal_fraction}


def export(source: str | os.PathLike | tuple[ConditionalGenerator, GeneratorCard], path: str | os.PathLike,
           *, tolerance: float = PARITY_TOLERANCE, parity_batch: int = 64, seed: int = 0) -> ExportResult:
    """Export a run directory, a ``.safetensors`` generator, or ``(module, card)`` to ``path``.

    Raises :class:`~synthaug.SynthaugError` if ONNX Runtime's output differs from torch's by more
    than ``tolerance`` (max abs difference) on ``parity_batch`` random inputs. A generator class
    may set :attr:`~synthaug.models.ConditionalGenerator.parity_min_equal` (e.g. 0.999) to require
    instead that this share of output values be within ``tolerance``: an autoregressive sampler
    turns a last-bit float difference at a CDF boundary into a different level (and different
    pixels after it), so exact parity is too strict.
    """
    module, card = _resolve(source)
    path = Path(path)
    if path.suffix != ".onnx":
        raise SynthaugError(f"{path}: expected an output path ending in .onnx")
    check_writable_target(path)
    module = module.float().cpu().eval()
    with atomic_path(path) as tmp:
        opset = _export_graph(module, card, tmp)
        errors = _parity(module, card, tmp, parity_batch, seed)
        diff, equal = float(errors.max()), float((errors <= tolerance).mean())
        min_equal = module.parity_min_equal
        if min_equal is None and not diff <= tolerance:
            raise SynthaugError(f"ONNX export failed its parity check: max abs difference {diff:.3g} "
                                f"against torch, expected <= {tolerance:g}")
        if min_equal is not None and not equal >= min_equal:
            raise SynthaugError(f"ONNX export failed its parity check: {equal:.4%} of output values within "
                                f"{tolerance:g} of torch's, expected at least {min_equal:.4%}")
    return ExportResult(path, diff, parity_batch, opset, equal)


def _resolve(source) -> tuple[ConditionalGenerator, GeneratorCard]:
    if isinstance(source, tuple):
        return source
    kind = kind_of(source)
    if kind is None or kind.load_generator is None:
        raise SynthaugError(f"{source}: expected a run directory or a .safetensors generator to export")
    return kind.load_generator(Path(source))


def _export_graph(module: ConditionalGenerator, card: GeneratorCard, out: Path) -> int:
    import onnx

    # Batch 2+ so the exporter does not specialise the batch dimension to a constant.
    example_noise = draw_noise(card.noise, 2, torch.Generator().manual_seed(0))
    example_labels = torch.zeros(2, dtype=torch.int64)
    batch = torch.export.Dim("batch")
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), _quiet("torch.onnx"):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module, (example_noise, example_labels), dynamo=True, external_data=False,
            input_names=["noise", "labels"], output_names=["images"],
            dynamic_shapes={"noise": {0: batch}, "labels": {0: batch}}, verbose=False,
        )
    model = program.model_proto
    onnx.helper.set_model_props(model, {METADATA_KEY: card.to_json()})
    model.doc_string = (f"synthaug {card.family} generator: noise {card.noise['shape']} "
                        f"({card.noise['distribution']}) + labels -> images {card.image_shape} in [0, 1]")
    onnx.checker.check_model(model, full_check=True)
    onnx.save_model(model, str(out))
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), -1)


@contextlib.contextmanager
def _quiet(logger_name: str):
    # The exporter logs notes about optional operator sets (torchvision's, say) that are noise
    # for a generator; errors still come through.
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _parity(module: ConditionalGenerator, card: GeneratorCard, onnx_path: Path, n: int, seed: int) -> np.ndarray:
    """Absolute differences between ONNX Runtime's and torch's outputs on random inputs."""
    import onnxruntime as ort

    rng = torch.Generator().manual_seed(seed)
    noise = draw_noise(card.noise, n, rng)
    labels = torch.randint(0, card.num_classes, (n,), generator=rng)
    with torch.inference_mode():
        expected = module(noise, labels).numpy()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (got,) = session.run(["images"], {"noise": noise.numpy(), "labels": labels.numpy()})
    if got.shape != expected.shape:
        raise SynthaugError(f"ONNX export failed its parity check: output shape {got.shape}, "
                            f"expected {expected.shape}")
    return np.abs(got - expected)
