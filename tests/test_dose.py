"""The dose of synthetic data: per-row loss weights and p schedules."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import synthaug
from synthaug import (SynthaugError, SyntheticMix, cosine_schedule, linear_schedule, synthetic_weight)

K = 3


@pytest.fixture(scope="module")
def sampler():
    from conftest import tiny_dcgan_sampler

    return tiny_dcgan_sampler(K)


def batch(size=8, seed=0):
    images = torch.rand(size, 1, 8, 8, generator=torch.Generator().manual_seed(seed))
    return images, torch.arange(size) % K


def test_new_names_are_exported():
    for name in ("synthetic_weight", "linear_schedule", "cosine_schedule"):
        assert name in synthaug.__all__ and name in synthaug.augment.__all__
        assert getattr(synthaug, name) is getattr(synthaug.augment, name)


# --------------------------------------------------------------------------- synthetic_weight

MASK = [False, True, True, False]


@pytest.mark.parametrize("is_synthetic", [torch.tensor(MASK), MASK, tuple(MASK), np.array(MASK)],
                         ids=["tensor", "list", "tuple", "numpy"])
def test_weights_are_one_for_real_rows_and_w_for_synthetic(is_synthetic):
    weights = synthetic_weight(is_synthetic, 0.3)
    assert weights.dtype == torch.float32 and weights.device.type == "cpu"
    assert torch.equal(weights, torch.tensor([1.0, 0.3, 0.3, 1.0]))


def test_weights_live_on_the_masks_device():
    weights = synthetic_weight(torch.tensor(MASK, device="meta"), 0.5, normalize=True)
    assert weights.device.type == "meta" and weights.shape == (4,) and weights.dtype == torch.float32


@pytest.mark.parametrize("w,expected", [(1, [1.0] * 4), (0, [1.0, 0.0, 0.0, 1.0]), (2.0, [1.0, 2.0, 2.0, 1.0])])
def test_weight_extremes(w, expected):
    assert torch.equal(synthetic_weight(torch.tensor(MASK), w), torch.tensor(expected))


def test_normalized_weights_give_the_weighted_mean_of_the_losses():
    is_syn = torch.tensor([False, True, True, True, False])
    losses = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    plain = synthetic_weight(is_syn, 0.5)
    normalized = synthetic_weight(is_syn, 0.5, normalize=True)
    torch.testing.assert_close(normalized.mean(), torch.tensor(1.0))
    torch.testing.assert_close(normalized, plain / plain.mean())
    # The documented one-liner: a mean over all rows that equals sum(w * l) / sum(w).
    torch.testing.assert_close((losses * normalized).mean(), (losses * plain).sum() / plain.sum())
    torch.testing.assert_close((losses * plain).mean(), (1 + 1 + 1.5 + 2 + 5) / 5 * torch.tensor(1.0))


@pytest.mark.parametrize("is_synthetic,expected", [
    ([True, True], [0.0, 0.0]),   # every row synthetic with w=0: zeros, not nan
    ([], []),                     # an empty batch
])
def test_normalized_weights_never_nan(is_synthetic, expected):
    weights = synthetic_weight(torch.tensor(is_synthetic, dtype=torch.bool), 0.0, normalize=True)
    assert torch.equal(weights, torch.tensor(expected))


def test_weighted_loss_one_liner_trains_like_a_per_row_weighted_loss():
    logits, y = torch.randn(4, K, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 2, 0])
    is_syn = torch.tensor(MASK)
    loss = (F.cross_entropy(logits, y, reduction="none") * synthetic_weight(is_syn, 0.5)).mean()
    rows = [F.cross_entropy(logits[i:i + 1], y[i:i + 1]) * (0.5 if MASK[i] else 1.0) for i in range(4)]
    torch.testing.assert_close(loss, torch.stack(rows).mean())


@pytest.mark.parametrize("is_synthetic,w,message", [
    (MASK, -0.1, "w: expected a number >= 0, got -0.1"),
    (MASK, math.nan, "w: expected a number >= 0, got nan"),
    (MASK, math.inf, "w: expected a number >= 0, got inf"),
    (MASK, "0.5", "w: expected a number >= 0, got '0.5'"),
    (MASK, True, "w: expected a number >= 0, got True"),
    (MASK, torch.full((20, 20), 0.5), "w: expected a number >= 0, got Tensor"),
    ([0, 1, 1, 0], 0.5, "is_synthetic: expected a 1-D bool tensor or a list of bools (the synthetic rows), got list"),
    (torch.tensor([0, 1]), 0.5, "is_synthetic: expected a 1-D bool tensor or a list of bools (the synthetic rows), "
                                "got torch.int64 of shape (2,)"),
    (torch.ones(2, 2, dtype=torch.bool), 0.5, "got torch.bool of shape (2, 2)"),
])
def test_synthetic_weight_bad_input(is_synthetic, w, message):
    with pytest.raises(SynthaugError) as err:
        synthetic_weight(is_synthetic, w)
    assert message in str(err.value) and "\n" not in str(err.value)


# --------------------------------------------------------------------------- schedules

@pytest.mark.parametrize("make,values", [
    (linear_schedule, {0: 0.8, 25: 0.65, 50: 0.5, 100: 0.2, 101: 0.2, 10_000: 0.2}),
    (cosine_schedule, {0: 0.8, 25: 0.5 + 0.3 * math.cos(math.pi / 4), 50: 0.5, 100: 0.2, 101: 0.2, 10_000: 0.2}),
])
def test_schedule_values_from_start_to_end_then_clamped(make, values):
    schedule = make(0.8, 0.2, 100)
    for step, expected in values.items():
        assert schedule(step) == pytest.approx(expected, abs=1e-12), step
    assert schedule(100) == 0.2 and schedule(500) == 0.2  # exactly end, not a rounding of it
    assert repr(schedule) == f"{type(schedule).__name__}(start=0.8, end=0.2, steps=100)"
    assert make(0, 1, 4)(2) == pytest.approx(0.5) and make(0, 1, 4) == make(0.0, 1.0, 4)


@pytest.mark.parametrize("args,message", [
    ((1.5, 0.2, 10), "start: expected a fraction in [0, 1], got 1.5"),
    ((0.5, -0.2, 10), "end: expected a fraction in [0, 1], got -0.2"),
    ((0.5, 0.2, 0), "steps: expected an integer >= 1, got 0"),
    ((0.5, 0.2, 2.5), "steps: expected an integer >= 1, got 2.5"),
    ((0.5, 0.2, True), "steps: expected an integer >= 1, got True"),
])
@pytest.mark.parametrize("make", [linear_schedule, cosine_schedule])
def test_schedule_bad_arguments(make, args, message):
    with pytest.raises(SynthaugError) as err:
        make(*args)
    assert str(err.value) == message


def test_schedule_bad_step():
    with pytest.raises(SynthaugError, match=r"^step: expected an integer >= 0, got -1$"):
        linear_schedule(0.5, 0.2, 10)(-1)


# --------------------------------------------------------------------------- SyntheticMix with a dose schedule

@pytest.mark.parametrize("mode", ["replace", "append"])
def test_mix_follows_a_linear_schedule_batch_by_batch(sampler, mode):
    schedule = linear_schedule(1.0, 0.0, steps=4)
    mix = SyntheticMix(sampler, p=schedule, mode=mode, return_mask=True)
    counts = []
    for step in range(6):
        assert mix.step == step
        images, labels = batch()
        out, out_labels, mask = mix(images, labels)
        counts.append(int(mask.sum()))
        assert out.shape[0] == out_labels.shape[0] == mask.shape[0] == 8 + (counts[-1] if mode == "append" else 0)
        assert torch.equal(out[:8][~mask[:8]], images[~mask[:8]])  # the real rows are untouched
    assert counts == [round(schedule(step) * 8) for step in range(6)] == [8, 6, 4, 2, 0, 0]


def test_mix_counts_training_batches_only_and_step_can_be_set(sampler):
    mix = SyntheticMix(sampler, p=linear_schedule(1.0, 0.0, steps=4), return_mask=True)
    mix.eval()
    assert [int(mix(*batch())[2].sum()) for _ in range(2)] == [8, 8] and mix.step == 0  # eval: no count
    mix.train()
    mix.step = 3  # e.g. resuming after three batches
    assert int(mix(*batch())[2].sum()) == 2 and mix.step == 4
    assert "step=4" in repr(mix) and "LinearSchedule(start=1.0, end=0.0, steps=4)" in repr(mix)
    for bad in (-1, 1.5, True):
        with pytest.raises(SynthaugError, match=f"^step: expected an integer >= 0, got {bad!r}$"):
            mix.step = bad


def test_constant_p_is_the_same_mix_as_before(sampler):
    # The draws of a constant p, written out: rows from randperm, their classes, then the noise,
    # all from one generator seeded with `seed` -- as SyntheticMix did before schedules existed.
    g = torch.Generator().manual_seed(5)
    constant = SyntheticMix(sampler, p=0.5, seed=5)
    flat = SyntheticMix(sampler, p=linear_schedule(0.5, 0.5, steps=3), seed=5)
    for call in range(3):
        images, labels = batch(seed=call)
        out, out_labels = constant(images, labels)
        rows = torch.randperm(8, generator=g)[:4]
        expected = images.index_copy(0, rows, sampler.sample_on_device(labels[rows], g))
        assert torch.equal(out, expected) and torch.equal(out_labels, labels), call
        assert all(torch.equal(a, b) for a, b in zip(flat(images, labels), (out, out_labels))), call
    assert constant.step == flat.step == 3 and constant.p == 0.5 and "p=0.5," in repr(constant)


@pytest.mark.parametrize("p,step,message", [
    (lambda step: 1.5, 0, "p schedule: expected a fraction in [0, 1] at step 0, got 1.5"),
    (lambda step: 1.0 - step, 2, "p schedule: expected a fraction in [0, 1] at step 2, got -1.0"),
    (lambda step: float("nan"), 0, "p schedule: expected a fraction in [0, 1] at step 0, got nan"),
    (lambda step: torch.tensor(0.5), 0, "p schedule: expected a fraction in [0, 1] at step 0, got Tensor"),
])
def test_mix_bad_schedule_value_names_the_step(sampler, p, step, message):
    mix = SyntheticMix(sampler, p=p)
    mix.step = step
    with pytest.raises(SynthaugError) as err:
        mix(*batch())
    assert str(err.value) == message
    assert mix.step == step  # the failed batch is not counted


def test_mix_bad_p_names_the_schedule_option(sampler):
    with pytest.raises(SynthaugError, match=r"^p: expected a fraction in \[0, 1\] or a schedule .*got '0.5'$"):
        SyntheticMix(sampler, p="0.5")


def test_compiled_mix_does_not_recompile_as_the_step_advances(sampler):
    # The step counter is Python state: read inside the compiled graph, every batch would recompile.
    graphs = []

    def counting_backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    torch._dynamo.reset()
    mix = SyntheticMix(sampler, p=0.5, seed=3)
    compiled = torch.compile(mix, backend=counting_backend)
    eager = SyntheticMix(sampler, p=0.5, seed=3)
    for call in range(4):
        images, labels = batch(seed=call)
        torch.testing.assert_close(compiled(images, labels)[0], eager(images, labels)[0])
        if call == 0:
            first = len(graphs)
    assert len(graphs) == first and mix.step == 4


def test_importing_synthaug_does_not_import_torch_dynamo():
    """torch.compiler.disable (the step methods above) is applied when the first SyntheticMix is
    built: as a decorator it imported torch._dynamo, ~2 s that every `import synthaug` paid."""
    import subprocess
    import sys

    code = ("import sys, synthaug; print('torch._dynamo' in sys.modules); "
            "from synthaug.augment.mix import SyntheticMix; print(SyntheticMix.__dict__.get('_step_kept_out', False))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]

