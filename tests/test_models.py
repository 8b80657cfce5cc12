"""One suite over every registered generator family (the family contract of synthaug/models/base.py)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from conftest import TINY
from exporters.onnx import export
from synthaug import OnnxSampler, SynthaugError, TorchSampler, list_models
from synthaug.card import METADATA_KEY, GeneratorCard
from synthaug.models import create_model, get_family
from synthaug.weights import load_generator, save_generator

CASES = [(family, shape) for family in list_models() for shape in TINY.get(family, {}).get("shapes", [])]


def test_every_registered_family_has_a_tiny_test_config():
    missing = set(list_models()) - set(TINY)
    assert not missing, f"families without a test config in tests/conftest.py TINY: {sorted(missing)}"
    assert all(TINY[f]["shapes"] for f in list_models())
    # Users bring colour photographs: every family is also tested on 3 channels.
    no_rgb = [f for f in list_models() if not any(shape[0] == 3 for shape in TINY[f]["shapes"])]
    assert not no_rgb, f"families without an RGB test shape in tests/conftest.py TINY: {no_rgb}"


@pytest.mark.parametrize("family,shape", CASES)
def test_output_shape_dtype_range(tiny_generator, family, shape):
    module, card = tiny_generator(family, shape, num_classes=4)
    images = TorchSampler(module, card).sample([0, 1, 2, 3, 3], seed=0)
    assert images.shape == (5, *shape)
    assert images.dtype == torch.float32
    assert images.min() >= 0 and images.max() <= 1
    assert torch.isfinite(images).all()


@pytest.mark.parametrize("family,shape", CASES)
def test_labels_condition_each_row(tiny_generator, family, shape):
    module, card = tiny_generator(family, shape, num_classes=4)
    noise = torch.randn(1, *card.noise["shape"]).repeat(4, *[1] * len(card.noise["shape"]))
    with torch.no_grad():
        out = module(noise, torch.tensor([0, 1, 2, 3]))
        alone = module(noise[2:3], torch.tensor([2]))
    # Same noise, different labels: different images; a row depends on its own label only.
    for a in range(4):
        for b in range(a + 1, 4):
            assert not torch.allclose(out[a], out[b]), (a, b)
    torch.testing.assert_close(out[2:3], alone, rtol=0, atol=1e-6)


@pytest.mark.parametrize("family,shape", CASES)
def test_same_seed_same_images(tiny_generator, family, shape):
    module, card = tiny_generator(family, shape)
    sampler = TorchSampler(module, card)
    a = sampler.sample([0, 1, 2], seed=7)
    assert torch.equal(a, sampler.sample([0, 1, 2], seed=7))
    assert not torch.equal(a, sampler.sample([0, 1, 2], seed=8))
    g = torch.Generator().manual_seed(7)
    assert torch.equal(a, sampler.sample([0, 1, 2], generator=g))


@pytest.mark.parametrize("family,shape", CASES)
def test_save_load_identical(tiny_generator, tmp_path, family, shape):
    module, card = tiny_generator(family, shape)
    path = save_generator(module, card, tmp_path / "g.safetensors")
    loaded, loaded_card = load_generator(path)
    assert loaded_card == card
    noise = torch.randn(6, *card.noise["shape"])
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    with torch.no_grad():
        assert torch.equal(module(noise, labels), loaded(noise, labels))


@pytest.mark.parametrize("family,shape", CASES)
def test_training_step_updates_and_stays_finite(family, shape):
    torch.manual_seed(0)
    trainer = create_model(family, TINY[family]["config"], shape, num_classes=3)
    before = [p.detach().clone() for p in trainer.generator.parameters()]
    rng = torch.Generator().manual_seed(0)
    for step in range(3):
        losses = trainer.training_step(torch.rand(8, *shape), torch.arange(8) % 3, rng, step)
        assert losses and all(np.isfinite(v) for v in losses.values()), losses
    after = list(trainer.generator.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after)), "generator did not train"
    assert all(torch.isfinite(p).all() for p in trainer.parameters())
    ema = trainer.sampling_generator()
    assert not ema.training
    assert torch.isfinite(ema(torch.randn(2, *ema.noise_spec()["shape"]), torch.tensor([0, 1]))).all()


@pytest.mark.parametrize("family,shape", CASES)
def test_onnx_export_dynamic_batch_card_and_parity(tiny_generator, tmp_path, family, shape):
    module, card = tiny_generator(family, shape)
    result = export((module, card), tmp_path / "m.onnx")
    assert result.max_abs_diff <= 1e-4
    model = onnx.load(str(result.path))
    onnx.checker.check_model(model, full_check=True)
    props = {p.key: p.value for p in model.metadata_props}
    assert GeneratorCard.from_json(props[METADATA_KEY]) == card
    assert [i.name for i in model.graph.input] == ["noise", "labels"]
    assert model.graph.input[1].type.tensor_type.elem_type == onnx.TensorProto.INT64
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    for n in (1, 5, 33):
        noise = torch.randn(n, *card.noise["shape"])
        labels = torch.arange(n) % card.num_classes
        (got,) = session.run(None, {"noise": noise.numpy(), "labels": labels.numpy()})
        with torch.no_grad():
            want = module(noise, labels).numpy()
        assert got.shape == (n, *shape) and got.dtype == np.float32
        assert np.abs(got - want).max() <= 1e-4


@pytest.mark.parametrize("family,shape", CASES)
def test_same_seed_same_images_on_torch_and_onnx(tiny_generator, tmp_path, family, shape):
    module, card = tiny_generator(family, shape)
    path = export((module, card), tmp_path / "m.onnx").path
    labels = [0, 2, 1, 1, 0]
    torch_images = TorchSampler(module, card).sample(labels, seed=3)
    onnx_images = OnnxSampler(str(path)).sample(labels, seed=3)
    assert (torch_images - onnx_images).abs().max() <= 1e-4


@pytest.mark.parametrize("family", list_models())
def test_bad_hyper_parameters_all_reported_at_once(family):
    with pytest.raises(SynthaugError) as err:
        get_family(family).config({"latent_dim": 0, "g_width": -3, "bogus": 1})
    msg = str(err.value)
    assert "latent_dim" in msg and "g_width" in msg and "bogus" in msg and "\n" not in msg


@pytest.mark.parametrize("family", list_models())
def test_unsupported_image_size_names_supported_ones(family):
    sizes = get_family(family).generator_cls.image_sizes
    with pytest.raises(SynthaugError, match=", ".join(map(str, sizes))):
        create_model(family, TINY[family]["config"], (1, 12, 12), num_classes=3)
