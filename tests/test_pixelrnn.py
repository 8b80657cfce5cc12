"""The pixelrnn family: masks, cached sampling, the one-graph ONNX sampler, likelihood training."""

from __future__ import annotations

import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from conftest import TINY, make_card
from exporters.onnx import export
from synthaug import SynthaugError
from synthaug.models import create_generator, create_model, get_family
from synthaug.models.pixelrnn_sampling import inverse_cdf, sample_cached, sample_naive

CONFIG = TINY["pixelrnn"]["config"]


def tiny(shape=(1, 8, 8), num_classes=3, seed=0, **overrides):
    torch.manual_seed(seed)
    return create_generator("pixelrnn", {**CONFIG, **overrides}, shape, num_classes).eval()


def subpixel_order(shape):
    """(c, i, j) of every sub-pixel in sampling order: raster, then R -> G -> B."""
    channels, height, width = shape
    return [(c, i, j) for i in range(height) for j in range(width) for c in range(channels)]


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 8, 8)])
def test_logits_of_a_subpixel_depend_only_on_earlier_subpixels(shape):
    g = tiny(shape, hidden=24, layers=2)  # enough units per colour group that ReLUs cut no path
    labels = torch.tensor([1])
    order = subpixel_order(shape)
    x = torch.rand(1, *shape)
    base = g.logits(x, labels)
    for t in [0, 1, 2, len(order) // 2 + shape[0], len(order) - 1]:
        c, i, j = order[t]
        later = x.clone()
        for cc, ii, jj in order[t:]:
            later[0, cc, ii, jj] = torch.rand(())
        torch.testing.assert_close(g.logits(later, labels)[:, c, :, i, j], base[:, c, :, i, j], rtol=0, atol=0)
        if t > 0:  # ... and it does see the sub-pixel just before it (here on the same row)
            pc, pi, pj = order[t - 1]
            before = x.clone()
            before[0, pc, pi, pj] = 1 - before[0, pc, pi, pj]
            assert not torch.equal(g.logits(before, labels)[:, c, :, i, j], base[:, c, :, i, j])


@pytest.mark.parametrize("shape,overrides", [((1, 8, 8), {}), ((3, 8, 8), {}),
                                             ((1, 8, 8), {"layers": 2, "row_kernel": 2, "state_kernel": 5}),
                                             ((1, 16, 16), {"levels": 256, "input_kernel": 5})])
def test_cached_sampling_gives_exactly_the_naive_samples(shape, overrides):
    g = tiny(shape, **overrides)
    noise = torch.rand(3, *shape, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 2, 1])
    cached = sample_cached(g, noise, labels)
    assert torch.equal(cached, sample_naive(g, noise, labels))
    assert torch.equal(cached, g(noise, labels))  # forward is the cached sampler
    assert len(torch.unique(cached)) > 1


def test_inverse_cdf_picks_the_level_whose_cdf_interval_holds_u():
    logits = torch.log(torch.tensor([[0.25, 0.25, 0.5]])).repeat(5, 1)
    u = torch.tensor([0.0, 0.2, 0.3, 0.6, 1.0])
    assert inverse_cdf(logits, u).tolist() == [0, 0, 1, 2, 2]


def test_outputs_are_quantised_levels_in_the_unit_range():
    g = tiny(levels=5)
    images = g(torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 0]))
    levels = images * 4
    assert torch.equal(levels, levels.round()) and images.min() >= 0 and images.max() <= 1
    assert g.noise_spec() == {"name": "noise", "shape": [1, 8, 8], "distribution": "uniform_0_1"}
    assert g.quantise(torch.tensor([0.0, 0.124, 0.126, 1.0])).tolist() == [0, 0, 1, 4]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    g = tiny((1, 8, 8), num_classes=3)
    card = make_card("pixelrnn", g, (1, 8, 8), 3)
    result = export((g, card), tmp_path_factory.mktemp("onnx") / "m.onnx")
    return g, result


def test_onnx_samples_in_one_loop_graph_like_torch(exported):
    g, result = exported
    model = onnx.load(str(result.path))
    ops = [node.op_type for node in model.graph.node]
    assert ops.count("Loop") == 1  # the whole autoregressive sampler is one graph
    assert result.equal_fraction >= 0.999
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    rng = torch.Generator().manual_seed(5)
    noise = torch.rand(40, 1, 8, 8, generator=rng)
    labels = torch.randint(0, 3, (40,), generator=rng)
    (got,) = session.run(None, {"noise": noise.numpy(), "labels": labels.numpy()})
    want = g(noise, labels).numpy()
    assert (np.abs(got - want) <= 1e-6).mean() >= 0.999


def test_exporter_applies_the_family_parity_criterion(tmp_path, monkeypatch):
    g = tiny()
    card = make_card("pixelrnn", g, (1, 8, 8), 3)
    import exporters.onnx as onnx_exporter

    # Skip the (slow) graph export; pretend ONNX Runtime sampled 1 sub-pixel in 500 differently.
    monkeypatch.setattr(onnx_exporter, "_export_graph", lambda module, card, out: (out.write_bytes(b""), 18)[1])
    monkeypatch.setattr(onnx_exporter, "_parity", lambda *a: np.array([1.0] + [0.0] * 499))
    with pytest.raises(SynthaugError, match="99.8000% of output values.*at least 99.9000%"):
        export((g, card), tmp_path / "a.onnx")
    monkeypatch.setattr(onnx_exporter, "_parity", lambda *a: np.array([1.0] + [0.0] * 999))
    assert export((g, card), tmp_path / "b.onnx").equal_fraction == 0.999


def test_bits_per_dim_is_finite_and_decreases():
    torch.manual_seed(0)
    trainer = create_model("pixelrnn", CONFIG, (1, 8, 8), num_classes=2)
    images = (torch.rand(16, 1, 8, 8) > 0.5).float()
    labels = torch.arange(16) % 2
    rng = torch.Generator().manual_seed(0)
    bits = [trainer.training_step(images, labels, rng, step)["bits_per_dim"] for step in range(30)]
    assert all(math.isfinite(b) for b in bits)
    assert bits[0] == pytest.approx(math.log2(8), abs=0.5)  # near uniform over 8 levels at the start
    assert bits[-1] < bits[0] - 0.3
    held_out = trainer.evaluate(images, labels)
    assert set(held_out) == {"test_bits_per_dim"} and math.isfinite(held_out["test_bits_per_dim"])
    assert type(trainer).default_holdout > 0


def test_labels_are_honoured_after_training():
    # Class 0 is dark, class 1 is bright: a trained model must sample accordingly.
    torch.manual_seed(0)
    trainer = create_model("pixelrnn", {**CONFIG, "lr": 1e-2, "ema_decay": 0.0}, (1, 8, 8), num_classes=2)
    labels = torch.arange(32) % 2
    images = torch.where(labels[:, None, None, None] == 1, 0.9, 0.1).expand(32, 1, 8, 8).contiguous()
    rng = torch.Generator().manual_seed(0)
    for step in range(60):
        trainer.training_step(images, labels, rng, step)
    g = trainer.sampling_generator()
    noise = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    dark = g(noise, torch.zeros(8, dtype=torch.int64)).mean()
    bright = g(noise, torch.ones(8, dtype=torch.int64)).mean()
    assert dark < 0.3 < 0.7 < bright


def test_bad_config_values_are_all_reported_at_once():
    with pytest.raises(SynthaugError) as err:
        get_family("pixelrnn").config({"levels": 1, "hidden": 0, "input_kernel": 4, "layers": 0})
    msg = str(err.value)
    for name in ("levels must be in [2, 256]", "hidden", "input_kernel", "layers"):
        assert name in msg, msg
    with pytest.raises(SynthaugError, match="levels must be in"):
        get_family("pixelrnn").config({"levels": 257})


def test_unsupported_image_size_lists_the_supported_ones():
    with pytest.raises(SynthaugError, match="8, 16, 28, 32, 64"):
        create_generator("pixelrnn", CONFIG, (1, 20, 20), 3)


def test_sampling_writes_nothing_to_stdout(capsys):
    sample_cached(tiny(), torch.rand(2, 1, 8, 8), torch.tensor([0, 1]))
    assert capsys.readouterr().out == ""
