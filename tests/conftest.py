"""Shared fixtures. TINY lists a test config for every registered family (guarded in
test_models.py), so adding a family without a test config fails the suite."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import synthaug
from synthaug.card import GeneratorCard
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
