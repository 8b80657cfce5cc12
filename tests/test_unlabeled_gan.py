"""The GAN families learn from unlabelled real images (issue 9, part 1): the discriminator scores
them with its unconditional term only, in the same call as the labelled batch; without them the
step is exactly the labelled-only one."""

from __future__ import annotations

import math

import pytest
import torch

import synthaug
from conftest import TINY
from synthaug.models import create_model
from synthaug.models.adversarial import d_loss, g_loss
from synthaug.models.base import GeneratorTrainer

FAMILIES = ["gan", "dcgan"]
SHAPE = (3, 16, 16)
#: Variants that take different paths through the step: augmentation draws from the rng, the
#: non-saturating loss, batchnorm in D (batch statistics over the whole discriminator call).
VARIANTS = [
    pytest.param("gan", {}, id="gan"),
    pytest.param("gan", {"diffaugment": "translation,cutout,color", "loss": "nonsaturating"},
                 id="gan-diffaugment-nonsaturating"),
    pytest.param("dcgan", {}, id="dcgan"),
    pytest.param("dcgan", {"d_norm": "batch", "diffaugment": "translation,cutout"},
                 id="dcgan-batchnorm-diffaugment"),
]
UNLABELED_KEYS = {"unlabeled_d_real", "unlabeled_d_fake", "unlabeled_loss_d", "unlabeled_loss_g"}


def trainer(family: str, extra: dict | None = None, seed: int = 0, shape=SHAPE, num_classes: int = 3):
    torch.manual_seed(seed)
    t = create_model(family, {**TINY[family]["config"], **(extra or {})}, shape, num_classes)
    t.prepare(100)
    return t


def batch(seed: int, n: int = 8, shape=SHAPE) -> torch.Tensor:
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed))


LABELS = torch.arange(8) % 3


def d_params(t) -> list[torch.Tensor]:
    return [p.detach().clone() for p in t.discriminator.parameters()]


def step_d_params(family, extra, unlabeled):
    """D's parameters after one step from the same seeds, with ``unlabeled`` images (or None)."""
    t = trainer(family, extra)
    t.training_step(batch(1), LABELS, torch.Generator().manual_seed(7), 0, unlabeled=unlabeled)
    return d_params(t)


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("family", FAMILIES)
def test_gan_families_declare_they_use_unlabeled_images(family):
    assert GeneratorTrainer.uses_unlabeled is False
    assert trainer(family).uses_unlabeled is True


@pytest.mark.parametrize("family", FAMILIES)
def test_unlabeled_images_reach_the_discriminators_gradient(family):
    images = batch(2).requires_grad_(True)
    t = trainer(family)
    t.training_step(batch(1), LABELS, torch.Generator().manual_seed(7), 0, unlabeled=images)
    assert images.grad is not None and images.grad.abs().sum() > 0
    # Which unlabelled images D saw changes its update (same seeds, same labelled batch).
    with_a, with_b = step_d_params(family, {}, batch(2)), step_d_params(family, {}, batch(3))
    assert not same(with_a, with_b)
    assert not same(with_a, step_d_params(family, {}, None))


@pytest.mark.parametrize("family", FAMILIES)
def test_unlabeled_weight_zero_makes_d_blind_to_their_content(family):
    # Spectral norm, no batchnorm: with weight 0 nothing of the unlabelled images enters D's update.
    off = {"unlabeled_weight": 0.0}
    assert same(step_d_params(family, off, batch(2)), step_d_params(family, off, batch(3)))


@pytest.mark.parametrize("family, extra", VARIANTS)
def test_losses_report_finite_unlabeled_terms(family, extra):
    rng = torch.Generator().manual_seed(7)
    losses = trainer(family, extra).training_step(batch(1), LABELS, rng, 0, unlabeled=batch(2))
    assert set(losses) == {"loss_d", "loss_g", "d_real", "d_fake"} | UNLABELED_KEYS
    assert all(math.isfinite(v) for v in losses.values()), losses
    plain = trainer(family, extra).training_step(batch(1), LABELS, torch.Generator().manual_seed(7), 0)
    assert set(plain) == {"loss_d", "loss_g", "d_real", "d_fake"}


@pytest.mark.parametrize("family", FAMILIES)
def test_unlabeled_weight_scales_the_unconditional_game(family):
    # D's forward comes before its update, so loss_d(w) = labelled term + w * unlabeled_loss_d.
    def losses(weight):
        t = trainer(family, {"unlabeled_weight": weight})
        return t.training_step(batch(1), LABELS, torch.Generator().manual_seed(7), 0, unlabeled=batch(2))

    one, three = losses(1.0), losses(3.0)
    assert one["unlabeled_loss_d"] == pytest.approx(three["unlabeled_loss_d"], rel=1e-6)
    assert three["loss_d"] - one["loss_d"] == pytest.approx(2 * one["unlabeled_loss_d"], rel=1e-4)


def reference_labelled_step(t, images, labels, rng, step):
    """The adversarial step as it was before unlabelled images existed, written out, so any
    change to the ops or to the order of rng draws on the labelled-only path shows up."""
    augment = lambda x: t._augment(x, rng, t.diffaugment_ops)  # noqa: E731
    t.generator.train()
    t.discriminator.train()
    n = images.shape[0]
    noise = torch.randn(n, *t.generator.noise_spec()["shape"], generator=rng)
    fake = t.generator(noise, labels)
    logits = t.discriminator(augment(torch.cat([images, fake.detach()])), torch.cat([labels, labels]))
    loss_d = d_loss(t.config.loss, logits[:n], logits[n:])
    t.optimizers()["d"].zero_grad(set_to_none=True)
    loss_d.backward()
    t.optimizers()["d"].step()
    t.discriminator.requires_grad_(False)
    loss_g = g_loss(t.config.loss, t.discriminator(augment(fake), labels))
    t.optimizers()["g"].zero_grad(set_to_none=True)
    loss_g.backward()
    t.optimizers()["g"].step()
    t.discriminator.requires_grad_(True)
    t.update_ema(step, t.config.ema_decay)
    return {"loss_d": loss_d.item(), "loss_g": loss_g.item(),
            "d_real": logits[:n].mean().item(), "d_fake": logits[n:].mean().item()}


@pytest.mark.parametrize("family, extra", VARIANTS)
def test_without_unlabeled_the_step_is_bitwise_the_labelled_one(family, extra):
    runs = {}
    for name in ("reference", "positional", "none"):
        t, rng = trainer(family, extra), torch.Generator().manual_seed(7)
        losses = []
        for step in range(3):
            if name == "reference":
                losses.append(reference_labelled_step(t, batch(10 + step), LABELS, rng, step))
            elif name == "positional":
                losses.append(t.training_step(batch(10 + step), LABELS, rng, step))
            else:
                losses.append(t.training_step(batch(10 + step), LABELS, rng, step, unlabeled=None))
        runs[name] = (t.state_dict(), losses, rng.get_state())
    ref_state, ref_losses, ref_rng = runs["reference"]
    for name in ("positional", "none"):
        state, losses, rng_state = runs[name]
        assert losses == ref_losses, name
        assert torch.equal(rng_state, ref_rng), name
        assert state.keys() == ref_state.keys()
        assert all(torch.equal(state[k], ref_state[k]) for k in state), name


def unconditional_logit(t, images: torch.Tensor) -> float:
    """Mean of D's label-free term ``linear(h)`` (an empty label batch: no row gets a class term)."""
    t.discriminator.eval()
    with torch.no_grad():
        uncond, class_term = t.discriminator(images, torch.zeros(0, dtype=torch.long), split=True)
    assert class_term.shape == (0,)
    return uncond.mean().item()


@pytest.fixture(scope="module")
def digits_split():
    """Digits shuffled: 20 labelled images of classes 0-4, an unlabelled pool of classes 5-9 (the
    classes the labels miss), and held-out images of each half."""
    data = synthaug.load_data("digits")
    perm = torch.randperm(len(data.labels), generator=torch.Generator().manual_seed(0))
    images, labels = data.images[perm].float() / data.pixel_max, data.labels[perm]
    low = labels < 5
    first, rest = torch.arange(1000), torch.arange(1000, len(labels))
    return {"images": images, "labels": labels,
            "labelled": first[low[first]][:20], "pool": first[~low[first]],
            "held_low": rest[low[rest]][:150], "held_high": rest[~low[rest]][:150]}


@pytest.mark.parametrize("family, config", [
    ("gan", {"g_width": 32, "d_width": 32, "latent_dim": 8, "embed_dim": 4}),
    ("dcgan", TINY["dcgan"]["config"]),
])
def test_unconditional_term_learns_what_unlabeled_images_look_like(digits_split, family, config):
    """Labels only for classes 0-4: D's label-free term scores held-out 0-4 above held-out 5-9.
    Unlabelled 5-9 in the unlabelled slot close most of that gap: D learnt from them."""
    s, x, y = digits_split, digits_split["images"], digits_split["labels"]
    gaps = {}
    for use in (True, False):
        torch.manual_seed(0)
        t = create_model(family, {**config, "diffaugment": "off", "lr_d": 1e-3, "lr_g": 1e-3},
                         (1, 8, 8), num_classes=10)
        rng = torch.Generator().manual_seed(0)
        for step in range(30):
            li = s["labelled"][torch.randint(0, len(s["labelled"]), (32,), generator=rng)]
            ui = s["pool"][torch.randint(0, len(s["pool"]), (32,), generator=rng)]
            t.training_step(x[li], y[li], rng, step, unlabeled=x[ui] if use else None)
        gaps[use] = unconditional_logit(t, x[s["held_low"]]) - unconditional_logit(t, x[s["held_high"]])
        noise = torch.rand(150, 1, 8, 8, generator=torch.Generator().manual_seed(1))
        assert unconditional_logit(t, x[s["held_high"]]) > unconditional_logit(t, noise)
    assert gaps[False] > 0, gaps  # the bias the labelled-only discriminator has
    assert gaps[True] < gaps[False] / 2, gaps
