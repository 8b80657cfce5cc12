"""Files written by the release before the refactor of issue 19 (a fixture in
``tests/fixtures/release_before_refactor``, written by commit c1bf12e) still load, sample the
same images and resume bitwise: a dcgan fit on digits stopped at step 4 (seed 3, batch 16), the
images it sampled then, and the generator and trainer of the same fit run straight to step 8."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

import synthaug
from synthaug.layout import CHECKPOINT_FILE, WEIGHTS_FILE

FIXTURE = Path(__file__).with_name("fixtures") / "release_before_refactor"


def test_its_run_directory_and_card_load_and_sample_the_same_images(capsys):
    expected = torch.from_numpy(np.load(FIXTURE / "run_step4_samples_seed0_classes039.npy"))
    for path in (FIXTURE / "run_step4", FIXTURE / "run_step4" / WEIGHTS_FILE):
        sampler = synthaug.load(path)
        assert torch.equal(sampler.sample([0, 3, 9], seed=0), expected), path
    run = synthaug.Run(FIXTURE / "run_step4")
    assert run.card.training["steps"] == 4 and run.card.family == "dcgan"
    assert [row["step"] for row in run.log()] == [1, 2, 3, 4]


def test_its_checkpoint_resumes_bitwise(tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(FIXTURE / "run_step4", run_dir)
    run = synthaug.fit("digits", out=run_dir, resume=True, steps=8, progress=False)
    assert run.card.training["steps"] == 8
    want = load_file(FIXTURE / "uninterrupted_step8_generator.safetensors")
    got = load_file(run_dir / WEIGHTS_FILE)
    assert want.keys() == got.keys()
    for key in want:
        assert torch.equal(want[key], got[key]), key
    trainer = torch.load(run_dir / CHECKPOINT_FILE, weights_only=True)["trainer"]
    for key, value in load_file(FIXTURE / "uninterrupted_step8_trainer.safetensors").items():
        assert torch.equal(trainer[key], value), key
    assert json.loads((run_dir / "card.json").read_text())["dataset"]["name"] == "digits"
