"""Family-specific behaviour of gan, vae and the shared adversarial step with DiffAugment."""

from __future__ import annotations

import pytest
import torch

import synthaug
from conftest import TINY
from synthaug import SynthaugError
from synthaug.layout import CHECKPOINT_FILE
from synthaug.models import create_model, get_family
from synthaug.models.adversarial import AUTO_DIFFAUGMENT_BELOW, AUTO_DIFFAUGMENT_OPS
from synthaug.models.diffaugment import OPERATIONS, diff_augment, parse_policy


def _batch(n=8, shape=(1, 8, 8), classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, *shape, generator=g), torch.arange(n) % classes


# --- DiffAugment -------------------------------------------------------------------------------

@pytest.mark.parametrize("op", OPERATIONS)
def test_each_operation_changes_images_differentiably_from_the_given_rng_only(op):
    x = torch.rand(6, 3, 16, 16, requires_grad=True)
    torch.manual_seed(123)
    global_state = torch.get_rng_state()
    y = diff_augment(x, (op,), torch.Generator().manual_seed(0))
    assert torch.equal(torch.get_rng_state(), global_state), "drew from the global RNG"
    assert y.shape == x.shape and not torch.equal(y, x)
    assert torch.equal(y, diff_augment(x, (op,), torch.Generator().manual_seed(0)))
    assert not torch.equal(y, diff_augment(x, (op,), torch.Generator().manual_seed(1)))
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_translation_and_cutout_move_or_mask_pixels_without_inventing_values():
    x = torch.rand(16, 1, 8, 8)
    y = diff_augment(x, ("translation", "cutout"), torch.Generator().manual_seed(0))
    # Every output pixel is an input pixel of the same image or the mid-grey fill (0.5).
    for a, b in zip(x, y):
        vals = torch.cat([a.flatten(), torch.tensor([0.5])])
        assert torch.isclose(b.flatten()[:, None], vals[None, :]).any(dim=1).all()


def test_policy_parsing_and_config_validation():
    assert parse_policy("cutout, translation") == ("translation", "cutout")
    assert parse_policy("off") == ()
    with pytest.raises(SynthaugError, match="translation"):
        parse_policy("translation,blur")
    with pytest.raises(SynthaugError) as err:
        get_family("gan").config({"diffaugment": "blur", "d_norm": "weight", "g_layers": 0})
    msg = str(err.value)
    assert "diffaugment" in msg and "auto" in msg and "d_norm" in msg and "g_layers" in msg


@pytest.mark.parametrize("family", ["gan", "dcgan"])
def test_auto_diffaugment_follows_dataset_size_and_survives_a_checkpoint(family):
    small = create_model(family, TINY[family]["config"], (1, 8, 8), 3)
    small.prepare(10)
    assert small.diffaugment_ops == ()  # off on small images at any dataset size (measured)
    trainer = create_model(family, TINY[family]["config"], (3, 32, 32), 3)
    assert trainer.diffaugment_ops == ()
    trainer.prepare(AUTO_DIFFAUGMENT_BELOW)
    assert trainer.diffaugment_ops == () and trainer.config_dict()["diffaugment"] == "off"
    trainer.prepare(AUTO_DIFFAUGMENT_BELOW - 1)
    assert trainer.diffaugment_ops == parse_policy(AUTO_DIFFAUGMENT_OPS)
    assert trainer.config_dict()["diffaugment"] == AUTO_DIFFAUGMENT_OPS  # the card records it
    resumed = create_model(family, TINY[family]["config"], (3, 32, 32), 3)
    resumed.load_state_dict(trainer.state_dict())
    assert resumed.diffaugment_ops == trainer.diffaugment_ops


def test_explicit_policy_wins_over_auto_and_off_draws_nothing_extra():
    on = create_model("gan", {**TINY["gan"]["config"], "diffaugment": "translation,cutout,color"}, (1, 8, 8), 3)
    on.prepare(10**6)
    assert on.diffaugment_ops == ("color", "translation", "cutout")
    off = create_model("gan", {**TINY["gan"]["config"], "diffaugment": "off"}, (1, 8, 8), 3)
    off.prepare(10)
    images, labels = _batch()
    rng = torch.Generator().manual_seed(0)
    off.training_step(images, labels, rng, 0)
    # Without DiffAugment a step draws only the generator's noise: dcgan's original step.
    expected = torch.Generator().manual_seed(0)
    torch.randn(8, TINY["gan"]["config"]["latent_dim"], generator=expected)
    assert torch.equal(rng.get_state(), expected.get_state())
    rng_on = torch.Generator().manual_seed(0)
    losses = on.training_step(images, labels, rng_on, 0)
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    assert not torch.equal(rng_on.get_state(), expected.get_state())


def test_gan_spectral_norm_is_optional():
    plain = create_model("gan", {**TINY["gan"]["config"], "d_norm": "none"}, (1, 8, 8), 3)
    sn = create_model("gan", TINY["gan"]["config"], (1, 8, 8), 3)
    assert not any("parametrizations" in k for k in plain.discriminator.state_dict())
    assert any("parametrizations" in k for k in sn.discriminator.state_dict())


# --- VAE ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_vae_step_reports_elbo_terms_with_kl_warmup(likelihood):
    cfg = {**TINY["vae"]["config"], "likelihood": likelihood, "kl_warmup": 4, "beta": 2.0}
    trainer = create_model("vae", cfg, (1, 8, 8), 3)
    images, labels = _batch()
    rng = torch.Generator().manual_seed(0)
    weights = []
    for step in range(6):
        out = trainer.training_step(images, labels, rng, step)
        assert out["loss"] == pytest.approx(out["recon"] + out["kl_weight"] * out["kl"], rel=1e-5)
        assert out["kl"] >= 0
        weights.append(out["kl_weight"])
    assert weights == [0.5, 1.0, 1.5, 2.0, 2.0, 2.0]


def test_vae_learns_to_reconstruct():
    torch.manual_seed(0)
    trainer = create_model("vae", {**TINY["vae"]["config"], "lr": 3e-3}, (1, 8, 8), 3)
    images, labels = _batch(16)
    before = (trainer.reconstruct(images, labels) - images).abs().mean()
    rng = torch.Generator().manual_seed(0)
    for step in range(60):
        trainer.training_step(images, labels, rng, step)
    after = (trainer.reconstruct(images, labels) - images).abs().mean()
    assert after < 0.75 * before
    mean, log_var = trainer.encode(images, labels)
    assert mean.shape == log_var.shape == (16, TINY["vae"]["config"]["latent_dim"])


def test_run_trainer_rebuilds_the_vae_with_its_encoder_and_holdout_metrics(tmp_path):
    run = synthaug.fit("digits", out=tmp_path / "vae", model="vae", config=TINY["vae"]["config"], steps=4,
                       batch_size=16, holdout=0.1, progress=False, checkpoint_every=2, sample_every=4)
    trainer = run.trainer()
    assert type(trainer).__name__ == "VAETrainer" and not trainer.training
    state = torch.load(run.path / CHECKPOINT_FILE, weights_only=True)["trainer"]
    for k, v in trainer.state_dict().items():
        assert torch.equal(v, state[k]), k
    images, labels = _batch(5, classes=10)
    assert trainer.reconstruct(images, labels).shape == (5, 1, 8, 8)
    # The exported generator is the EMA decoder: the same module the run's sampler uses.
    noise = torch.randn(3, TINY["vae"]["config"]["latent_dim"])
    with torch.no_grad():
        want = run.sampler().module(noise, torch.tensor([1, 2, 3]))
        assert torch.equal(trainer.sampling_generator()(noise, torch.tensor([1, 2, 3])), want)
    assert {"test_neg_elbo", "test_recon", "test_kl"} <= set(run.card.metrics)
    assert "test_neg_elbo" in run.log()[-1]


def test_run_trainer_without_checkpoint_says_so(tmp_path, digits_run):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(digits_run.path, copy)
    (copy / CHECKPOINT_FILE).unlink()
    with pytest.raises(SynthaugError, match="checkpoint"):
        synthaug.Run(copy).trainer()
