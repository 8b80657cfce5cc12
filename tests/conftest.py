"""Shared fixtures and helpers. TINY lists a test config for every registered family (guarded in
test_models.py), so adding a family without a test config fails the suite.

Plain helpers are imported by name (``from conftest import run_cli``); test modules never import
each other."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import synthaug
from synthaug.card import GeneratorCard
from synthaug.cli import main
from synthaug.models import create_generator

#: Per family: small hyper-parameters, and the image shapes to test (C, H, W).
TINY = {
    "dcgan": {"config": {"g_width": 8, "d_width": 8, "latent_dim": 8, "embed_dim": 4},
              "shapes": [(1, 8, 8), (3, 16, 16), (3, 32, 32), (3, 64, 64)]},
    "pixelrnn": {"config": {"hidden": 8, "layers": 1, "levels": 8, "input_kernel": 3},
                 "shapes": [(1, 8, 8), (3, 8, 8)]},
    "gan": {"config": {"g_width": 16, "d_width": 16, "latent_dim": 8, "embed_dim": 4},
            "shapes": [(1, 8, 8), (3, 16, 16), (1, 28, 28), (3, 32, 32)]},
    "vae": {"config": {"g_width": 8, "e_width": 8, "latent_dim": 8, "embed_dim": 4},
            "shapes": [(1, 8, 8), (3, 16, 16), (3, 32, 32)]},
}

FAST_FIT = ["--steps", "4", "--no-progress", "--batch-size", "16", "--checkpoint-every", "2",
            "--sample-every", "2"]


def tiny_set_args(family: str) -> list[str]:
    out = []
    for k, v in TINY[family]["config"].items():
        out += ["--set", f"{k}={v}"]
    return out


def make_card(family: str, module, image_shape, num_classes: int) -> GeneratorCard:
    return GeneratorCard(
        family=family, config=dict(TINY[family]["config"]), image_shape=list(image_shape),
        num_classes=num_classes, class_names=[f"c{i}" for i in range(num_classes)],
        noise=module.noise_spec(),
        output={"dtype": "float32", "layout": "NCHW", "range": [0.0, 1.0], "pixel_max": 255},
    )


def tiny_dcgan_sampler(num_classes: int):
    """A TorchSampler over an untrained tiny 8x8 dcgan (seed 0) with ``num_classes`` classes."""
    torch.manual_seed(0)
    g = create_generator("dcgan", TINY["dcgan"]["config"], (1, 8, 8), num_classes).eval()
    return synthaug.TorchSampler(g, make_card("dcgan", g, (1, 8, 8), num_classes))


@pytest.fixture
def tiny_generator():
    """Factory: an untrained tiny generator of a family, with its card."""

    def make(family: str, image_shape=(1, 8, 8), num_classes: int = 3, seed: int = 0):
        torch.manual_seed(seed)
        module = create_generator(family, TINY[family]["config"], image_shape, num_classes).eval()
        return module, make_card(family, module, image_shape, num_classes)

    return make


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """A short dcgan fit on digits through the public API, shared by the read-only tests."""
    out = tmp_path_factory.mktemp("runs") / "digits"
    return synthaug.fit("digits", out=out, config=TINY["dcgan"]["config"], steps=6, batch_size=32,
                        progress=False, sample_every=3, checkpoint_every=3)


def write_npz(path, n=24, size=8, classes=3, channels=None, seed=0):
    rng = np.random.default_rng(seed)
    shape = (n, size, size) if channels is None else (n, size, size, channels)
    np.savez(path, images=rng.integers(0, 256, shape, dtype=np.uint8),
             labels=np.arange(n) % classes)
    return path


# --------------------------------------------------------------------------- the CLI, in-process

#: The metadata key under which .onnx and .safetensors files carry their card.
CARD_KEY = "synthaug.card"


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """Run ``synthaug *argv`` in-process; return (exit code, stdout, stderr)."""
    capsys.readouterr()  # drop anything captured before
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse errors, --version
        rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return rc, out, err


def error_line(err: str, command: str, *needles: str) -> str:
    """Assert stderr is exactly one ``synthaug <command>: error:`` line holding every needle."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err}"
    line = lines[0]
    assert line.startswith(f"synthaug {command}: error: "), line
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    return line


def expect_error(capsys, command: str, argv, *needles: str) -> str:
    """Run ``synthaug command *argv``: exit code 2, nothing on stdout, one error line holding every needle."""
    rc, out, err = run_cli(capsys, command, *argv)
    assert rc == 2, f"expected exit code 2, got {rc}; stdout: {out!r}; stderr: {err!r}"
    line = error_line(err, command, *needles)
    assert out == "", f"nothing should reach stdout on error, got {out!r}"
    return line


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file below ``directory`` (hidden ones too) with its bytes."""
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- files on disk

_png_rng = np.random.default_rng(0)


def write_png(path: Path, size: int = 8, mode: str = "RGB") -> Path:
    """A random ``size`` x ``size`` PNG (RGB, or greyscale for any other mode); parents are created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size, size, 3) if mode == "RGB" else (size, size)
    Image.fromarray(_png_rng.integers(0, 256, shape, dtype=np.uint8)).save(path)
    return path


def onnx_with_card(source: Path, dest: Path, edit) -> Path:
    """``source``'s ONNX graph saved at ``dest`` under its card as changed in place by ``edit(card)``
    (written raw: no validation on the way out)."""
    import onnx

    model = onnx.load(str(source))
    props = {p.key: p.value for p in model.metadata_props}
    card = json.loads(props[CARD_KEY])
    edit(card)
    props[CARD_KEY] = json.dumps(card)
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, props)
    onnx.save(model, str(dest))
    return dest
