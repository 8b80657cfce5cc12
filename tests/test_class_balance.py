"""fit(class_balance=B): batches that cover rare classes more evenly (issue 18, section 4), recorded
in the card, kept by --resume (which refuses a different value) and checked as bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

import synthaug
from conftest import TINY
from synthaug.data import per_class_subset
from synthaug.train.batches import ClassBalancedBatches, EpochBatches

TINY_CFG = TINY["dcgan"]["config"]
LONG_TAIL = [100, 100, 100, 5, 5]


def _labels() -> torch.Tensor:
    return torch.repeat_interleave(torch.arange(len(LONG_TAIL)), torch.tensor(LONG_TAIL))


@pytest.mark.parametrize("balance, rare_share", [(0.0, 15 / 310), (0.5, None), (1.0, 2 / 5)])
def test_the_batches_give_rare_classes_the_share_class_balance_asks_for(balance, rare_share):
    labels = _labels()
    batches = ClassBalancedBatches(labels, 64, seed=3, balance=balance) if balance else EpochBatches(len(labels), 64, 3)
    drawn = torch.cat([batches(s) for s in range(200)])
    share = torch.isin(labels[drawn], torch.tensor([3, 4])).float().mean().item()
    if balance == 0.5:  # half way on a log scale: between the data's mix and every class alike
        assert 0.1 < share < 0.3, share
    else:
        assert share == pytest.approx(rare_share, abs=0.02)
    per_class = torch.bincount(labels[drawn], minlength=5).float() / len(drawn)
    if balance == 1.0:
        assert torch.allclose(per_class, torch.full((5,), 0.2), atol=0.02), per_class


def test_the_batches_are_a_pure_function_of_seed_and_step():
    labels = _labels()
    a, b = ClassBalancedBatches(labels, 32, 7, 1.0), ClassBalancedBatches(labels, 32, 7, 1.0)
    later = [b(s) for s in range(30, 40)]  # b jumps in at step 30 (a resumed run)
    assert all(torch.equal(a(s), x) for s, x in zip(range(30, 40), later))
    assert not torch.equal(ClassBalancedBatches(labels, 32, 8, 1.0)(0), a(0))
    assert len(a(0)) == 32


def _long_tail_digits():
    data = synthaug.load_data("digits")
    return data.subset(per_class_subset(data.labels, [60] * 5 + [4] * 5, 0))


def test_fit_records_class_balance_and_resume_equals_uninterrupted(tmp_path):
    data = _long_tail_digits()
    straight = synthaug.fit(data, out=tmp_path / "a", config=TINY_CFG, steps=8, batch_size=16, class_balance=1.0,
                            progress=False, checkpoint_every=4)
    assert straight.card.training["class_balance"] == 1.0
    synthaug.fit(data, out=tmp_path / "b", config=TINY_CFG, steps=4, batch_size=16, class_balance=1.0, progress=False)
    resumed = synthaug.fit(data, out=tmp_path / "b", steps=8, resume=True, progress=False)
    a, b = load_file(straight.weights_path), load_file(resumed.weights_path)
    assert all(torch.equal(a[k], b[k]) for k in a)
    plain = synthaug.fit(data, out=tmp_path / "c", config=TINY_CFG, steps=8, batch_size=16, progress=False)
    assert "class_balance" not in plain.card.training
    assert not all(torch.equal(a[k], v) for k, v in load_file(plain.weights_path).items())  # other batches


def test_resume_refuses_a_different_class_balance(tmp_path):
    data = _long_tail_digits()
    synthaug.fit(data, out=tmp_path / "run", config=TINY_CFG, steps=2, class_balance=0.5, progress=False)
    with pytest.raises(synthaug.SynthaugError, match=r"class_balance=1.0 \(checkpoint: 0.5\)"):
        synthaug.fit(data, out=tmp_path / "run", steps=4, resume=True, class_balance=1.0, progress=False)
    synthaug.fit(data, out=tmp_path / "run", steps=3, resume=True, class_balance=0.5, progress=False)  # the same: fine


@pytest.mark.parametrize("value", ["1.5", "-0.1", "nan"])
def test_cli_refuses_a_class_balance_outside_0_1_in_one_line(tmp_path, value):
    proc = subprocess.run([sys.executable, "-m", "synthaug", "fit", "digits", "--out", str(tmp_path / "r"),
                           "--steps", "1", "--class-balance", value, "--no-progress"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"synthaug fit: error: class_balance: expected a number in [0, 1], got {float(value)!r}"]
    assert not (tmp_path / "r").exists()
