"""The VAE's bound on the encoder's log-variance (``max_log_var``, issue 11 item 2).

At the defaults on photos:train (32x32 RGB), Adam's first steps threw the encoder's log-variance
above 80 within a dozen steps and ``exp`` overflowed float32 in the KL term: ``training diverged
... loss is inf``. The bound applies in the forward pass only, so below it nothing changes.
"""

from __future__ import annotations

import math

import pytest
import torch

from synthaug.data import load_data
from synthaug.errors import SynthaugError
from synthaug.models import create_model

from conftest import expect_error

TINY_VAE = {"g_width": 8, "e_width": 8, "latent_dim": 8, "embed_dim": 4}
#: Above this ``exp`` overflows float32: the unbounded KL term would be inf.
FLOAT32_EXP_LIMIT = math.log(torch.finfo(torch.float32).max)


def tiny_vae(image_shape=(3, 32, 32), num_classes: int = 3, seed: int = 0, **config):
    torch.manual_seed(seed)
    return create_model("vae", {**TINY_VAE, **config}, image_shape, num_classes=num_classes)


def force_log_var(trainer, value: float) -> torch.nn.Parameter:
    """Make the encoder output posterior mean 0 and log-variance ``value`` for every image;
    return the bias that holds the log-variance."""
    last = trainer.encoder.head[-1]
    latent = trainer.config.latent_dim
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
        last.bias[latent:] = value
    return last.bias


def test_a_huge_log_variance_gives_a_finite_kl_at_the_bound_and_a_gradient_that_lowers_it():
    trainer = tiny_vae()
    bias = force_log_var(trainer, 100.0)  # exp(100) is inf in float32
    images, labels = torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 2, 0])

    held_out = trainer.evaluate(images, labels)
    bound = trainer.config.max_log_var
    assert held_out["test_kl"] == pytest.approx(8 * 0.5 * (math.exp(bound) - 1.0 - bound), rel=1e-5)

    logs = trainer.training_step(images, labels, torch.Generator().manual_seed(0), step=0)
    assert all(math.isfinite(v) for v in logs.values()), logs
    # The gradient passed through the bound: the KL term pushed the log-variance down.
    assert (bias[8:] < 100.0).all()


def test_below_the_bound_losses_and_weights_are_those_of_any_higher_bound():
    images, labels = torch.rand(8, 3, 16, 16), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    runs = []
    for bound in (10.0, 80.0):
        trainer = tiny_vae((3, 16, 16), max_log_var=bound)
        rng = torch.Generator().manual_seed(0)
        logs = [trainer.training_step(images, labels, rng, step) for step in range(5)]
        runs.append((logs, trainer.generator.state_dict()))
    (logs_10, weights_10), (logs_80, weights_80) = runs
    assert logs_10 == logs_80
    assert all(torch.equal(weights_10[k], weights_80[k]) for k in weights_10)


def test_photos_with_a_large_learning_rate_stay_finite_though_the_log_variance_overflows():
    """The tiny widths need a larger learning rate to reach the excursion that the default widths
    reach at the default one (without the bound this run's loss is inf at step 31)."""
    data = load_data("photos:train")
    images, labels = data.as_float(), data.labels
    trainer = tiny_vae(num_classes=6, seed=2, lr=1e-2)
    raw_max = []
    trainer.encoder.register_forward_hook(lambda module, args, out: raw_max.append(float(out[1].detach().max())))
    rng = torch.Generator().manual_seed(2)
    losses = []
    for step in range(40):
        idx = torch.randint(0, len(images), (16,), generator=rng)
        losses.append(trainer.training_step(images[idx], labels[idx], rng, step)["loss"])
    assert max(raw_max) > FLOAT32_EXP_LIMIT  # unbounded, exp(log_var) would have been inf
    assert all(math.isfinite(loss) for loss in losses), losses


@pytest.mark.parametrize("value, problem", [
    (100, "max_log_var must be in [0.0, 80.0], got 100"),
    (-1, "max_log_var must be in [0.0, 80.0], got -1"),
    ("big", "max_log_var must be a number, got 'big'"),
])
def test_a_bad_bound_is_refused_in_one_line(capsys, tmp_path, value, problem):
    with pytest.raises(SynthaugError) as err:
        tiny_vae(max_log_var=value)
    assert str(err.value) == f"invalid vae config: {problem}"
    expect_error(capsys, "fit", ["digits", "--model", "vae", "--out", tmp_path / "run", "--steps", "1",
                                 "--set", f"max_log_var={value}"], problem)
    assert not (tmp_path / "run").exists()
