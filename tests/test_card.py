"""The generator card (docs/card.md) and sampler plumbing that every backend shares."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from exporters.onnx import export
from synthaug import CardError, GeneratorCard, OnnxSampler, SynthaugError, TorchSampler
from synthaug.card import FORMAT_VERSION


def _card_dict(**changes):
    d = GeneratorCard("dcgan", {}, [1, 8, 8], 2, ["a", "b"], {"name": "noise", "shape": [4], "distribution": "normal"},
                      {"range": [0, 1], "pixel_max": 255}).to_dict()
    d.update(changes)
    return d


def test_round_trip_through_json():
    card = GeneratorCard.from_dict(_card_dict())
    assert GeneratorCard.from_json(card.to_json()) == card
    assert card.format_version == FORMAT_VERSION


@pytest.mark.parametrize("changes,message", [
    ({"format_version": FORMAT_VERSION + 1}, "newer than this synthaug supports"),
    ({"format_version": "1"}, "integer format_version"),
    ({"surprise": 1}, "unknown field(s) surprise"),
    ({"num_classes": 3}, "class_names must list 3 names"),
    ({"noise": {"name": "noise", "shape": [4], "distribution": "cauchy"}}, "noise distribution"),
    ({"image_shape": [1, 8]}, "image_shape must be [C, H, W]"),
])
def test_invalid_cards_are_rejected_with_the_reason(changes, message):
    with pytest.raises(CardError) as err:
        GeneratorCard.from_dict(_card_dict(**changes), source="x.onnx")
    assert message in str(err.value) and str(err.value).startswith("x.onnx")


def test_missing_field_named():
    d = _card_dict()
    del d["noise"]
    with pytest.raises(CardError, match="missing field\\(s\\) noise"):
        GeneratorCard.from_json(json.dumps(d))


def test_labels_checked_against_the_card(tiny_generator):
    module, card = tiny_generator("dcgan", num_classes=3)
    sampler = TorchSampler(module, card)
    with pytest.raises(SynthaugError, match=r"expected labels in 0..2 \(3 classes"):
        sampler.sample([0, 3])
    with pytest.raises(SynthaugError, match="integer class labels"):
        sampler.sample(torch.tensor([0.5]))
    with pytest.raises(SynthaugError, match="either seed or generator"):
        sampler.sample([0], seed=1, generator=torch.Generator())
    assert sampler.sample([], seed=0).shape == (0, 1, 8, 8)


def test_large_requests_are_batched_without_changing_results(tiny_generator):
    module, card = tiny_generator("dcgan", num_classes=3)
    labels = torch.arange(70) % 3
    whole = TorchSampler(module, card, batch_size=256).sample(labels, seed=4)
    chunked = TorchSampler(module, card, batch_size=16).sample(labels, seed=4)
    torch.testing.assert_close(whole, chunked, rtol=0, atol=1e-6)


def test_onnx_sampler_survives_pickling(tiny_generator, tmp_path):
    module, card = tiny_generator("dcgan", num_classes=3)
    path = export((module, card), tmp_path / "m.onnx").path
    sampler = OnnxSampler(str(path))
    before = sampler.sample([0, 1], seed=0)  # creates the session
    clone = pickle.loads(pickle.dumps(sampler))
    assert clone._session is None
    assert torch.equal(clone.sample([0, 1], seed=0), before)


def test_truncated_noise_stays_inside_and_is_seeded(tiny_generator):
    from synthaug.runtime import draw_noise

    spec = {"name": "noise", "shape": [1000], "distribution": "normal"}
    z = draw_noise(spec, 4, torch.Generator().manual_seed(0), truncation=0.5)
    assert z.abs().max() <= 0.5 and z.std() > 0.2
    assert torch.equal(z, draw_noise(spec, 4, torch.Generator().manual_seed(0), truncation=0.5))
    with pytest.raises(SynthaugError, match="truncation applies to normal noise"):
        draw_noise({**spec, "distribution": "uniform_0_1"}, 1, torch.Generator(), truncation=1.0)
    module, card = tiny_generator("dcgan", num_classes=3)
    sampler = TorchSampler(module, card)
    plain = sampler.sample([0, 1], seed=1)
    sampler.truncation = 0.7
    assert not torch.equal(plain, sampler.sample([0, 1], seed=1))
    assert torch.equal(sampler.sample([0, 1], seed=1), sampler.sample([0, 1], seed=1))


def test_filtered_sampler_keeps_what_the_classifier_agrees_with(tiny_generator):
    from synthaug import FilteredSampler

    module, card = tiny_generator("dcgan", num_classes=2)
    inner = TorchSampler(module, card)
    threshold = inner.sample(torch.zeros(200, dtype=torch.int64), seed=0).mean(dim=(1, 2, 3)).median()

    def brightness_classifier(images):  # "class 1" = brighter than the median image
        score = (images.mean(dim=(1, 2, 3)) - threshold) * 100
        return torch.stack([-score, score], dim=1)

    sampler = FilteredSampler(inner, brightness_classifier, max_rounds=20)
    labels = torch.tensor([0, 1] * 20)
    images = sampler.sample(labels, seed=3)
    agree = brightness_classifier(images).argmax(1) == labels
    assert torch.equal(agree, sampler.last_accepted) and agree.float().mean() > 0.9
    assert 0.2 < sampler.acceptance_rate < 0.9
    unfiltered = inner.sample(labels, seed=3)
    assert (brightness_classifier(unfiltered).argmax(1) == labels).float().mean() < agree.float().mean()
    with pytest.raises(SynthaugError, match="logits \\[N, 2\\]"):
        FilteredSampler(inner, lambda x: torch.zeros(len(x), 5)).sample([0], seed=0)


def test_a_card_error_is_a_synthaug_error():
    """One base class for user errors: ``except SynthaugError`` also catches a bad card."""
    with pytest.raises(SynthaugError, match="card"):
        GeneratorCard.from_json("{}")
    assert issubclass(CardError, SynthaugError) and issubclass(CardError, ValueError)
