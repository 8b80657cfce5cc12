"""The card keeps the generator's architecture (``config``) apart from the training settings
(``training["hyperparameters"]``): cards of release 0.1.0 (all in ``config``; a fixture written
by that release) load now and sample the same images, and a training knob this release does not
know (a later release's) does not stop a card from loading."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import synthaug
from synthaug.card import GeneratorCard
from synthaug.models import get_family, list_models
from synthaug.run import Run, full_config
from synthaug.weights import load_generator, save_generator
from conftest import run_cli

RELEASE_0_1_0 = Path(__file__).with_name("fixtures") / "release_0_1_0"
TINY = {"gan": {"g_width": 16, "d_width": 16}, "dcgan": {"g_width": 8, "d_width": 8},
        "vae": {"g_width": 8, "e_width": 8}, "pixelrnn": {"hidden": 8, "layers": 1}}


def test_every_family_has_a_tiny_config_here():
    assert sorted(TINY) == sorted(list_models())


def test_a_card_of_release_0_1_0_loads_and_samples_the_same_images():
    old_card = json.loads((RELEASE_0_1_0 / "card.json").read_text())
    assert "lr_g" in old_card["config"] and "hyperparameters" not in old_card["training"]  # the old format
    sampler = synthaug.load(RELEASE_0_1_0 / "generator.safetensors")
    images = sampler.sample([0, 1, 2], seed=0)
    expected = np.load(RELEASE_0_1_0 / "samples_seed0_classes012.npy")
    assert torch.equal(images, torch.from_numpy(expected))
    assert sampler.card.config["lr_g"] == 1e-4


def test_info_reads_a_card_of_release_0_1_0(capsys):
    code, out, err = run_cli(capsys, "info", RELEASE_0_1_0 / "generator.safetensors", "--json")
    assert code == 0 and err == ""
    assert json.loads(out)["config"]["g_width"] == 8


@pytest.mark.parametrize("family", list_models())
def test_the_card_holds_the_architecture_and_the_training_settings_apart(tmp_path, family):
    run = synthaug.fit("digits", out=tmp_path / "run", model=family, config={**TINY[family]}, steps=1,
                       progress=False)
    card = run.card
    fields = dataclasses.fields(get_family(family).config_cls)
    arch = {f.name for f in fields if f.metadata.get("architecture")}
    assert set(card.config) == arch and arch
    hyper = card.training["hyperparameters"]
    assert set(hyper) == {f.name for f in fields} - arch
    # Together they are the trainer's whole config, and Run.trainer() rebuilds the trainer from them.
    as_json = lambda config: json.loads(json.dumps(dataclasses.asdict(config)))  # noqa: E731 - tuples as lists
    asked = {**TINY[family], **({"diffaugment": hyper["diffaugment"]} if "diffaugment" in hyper else {})}
    assert as_json(get_family(family).config(full_config(card))) == as_json(get_family(family).config(asked))
    assert isinstance(run.trainer(), torch.nn.Module)


def test_a_training_knob_this_release_does_not_know_does_not_stop_loading(tmp_path):
    run = synthaug.fit("digits", out=tmp_path / "run", config=TINY["dcgan"], steps=1, progress=False)
    generator, card = load_generator(run.path / "generator.safetensors")
    raw = json.loads(card.to_json())
    raw["training"]["hyperparameters"]["gradient_penalty"] = 10.0  # a later release's training knob
    newer = GeneratorCard.from_json(json.dumps(raw))
    path = save_generator(generator, newer, tmp_path / "newer.safetensors")
    expected = synthaug.load(run.path / "generator.safetensors").sample([0, 4], seed=3)
    assert torch.equal(synthaug.load(path).sample([0, 4], seed=3), expected)
    assert "gradient_penalty" not in full_config(newer)
    (run.path / "card.json").write_text(newer.to_json())
    assert isinstance(Run(run.path).trainer(), torch.nn.Module)
