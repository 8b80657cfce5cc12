"""The generator card (Contract 1) and sampler plumbing that every backend shares."""

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
