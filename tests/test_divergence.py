"""fit on a non-finite loss: --on-divergence restart (default) goes back to the last good state
with halved learning rates, at most 3 times; stop stops at once. A VAE with a learning rate far
too high is the configuration forced to diverge (measured: lr 0.3 diverges at step 1 on digits and
0.15 does not; lr 1.0 diverges at every halving down to 0.125)."""

from __future__ import annotations

import csv
import logging
import math
import re

import pytest
import torch

from synthaug import fit
from synthaug.errors import SynthaugError
from test_bad_input import run_cli

TINY_VAE = {"g_width": 8, "e_width": 8}


def test_restart_goes_back_halves_the_learning_rate_and_finishes(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="synthaug")
    run = fit("digits", out=tmp_path / "run", model="vae", config={**TINY_VAE, "lr": 0.3}, steps=60,
              checkpoint_every=20, sample_every=1000, progress=False)
    restarts = run.card.training["restarts"]
    assert len(restarts) >= 1
    first = restarts[0]
    assert first["back_to"] < first["diverged_at"] < first["back_to"] + 20 and first["back_to"] % 20 == 0
    assert [r["lr_scale"] for r in restarts] == [0.5 ** (i + 1) for i in range(len(restarts))]
    said = [r.getMessage() for r in caplog.records if "going back" in r.getMessage()]
    assert len(said) == len(restarts)
    assert re.fullmatch(rf"training diverged at step {first['diverged_at']}: loss is (nan|inf|-inf); going back to "
                        rf"step {first['back_to']} with the learning rates halved \(restart 1 of 3\)", said[0])
    # The log holds each step once, all finite: the diverged steps were replayed, not kept.
    rows = list(csv.DictReader((run.path / "log.csv").open()))
    assert [int(r["step"]) for r in rows] == list(range(1, 61))
    assert all(math.isfinite(float(r["loss"])) for r in rows)
    state = torch.load(run.path / "checkpoint.pt", weights_only=True)
    lrs = {g["lr"] for g in state["optimizers"]["vae"]["param_groups"]}
    assert lrs == {0.3 * restarts[-1]["lr_scale"]}
    assert torch.isfinite(run.sampler().sample([0, 1, 2], seed=0)).all()


def test_restart_gives_up_after_three(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="synthaug")
    with pytest.raises(SynthaugError, match=r"^training diverged at step \d+: loss is (nan|inf|-inf), after 3 "
                                            r"restarts with halved learning rates; try a lower learning rate$"):
        fit("digits", out=tmp_path / "run", model="vae", config={**TINY_VAE, "lr": 1.0}, steps=40,
            checkpoint_every=20, progress=False)
    said = [r.getMessage() for r in caplog.records if "going back" in r.getMessage()]
    assert [re.search(r"restart (\d) of 3", m).group(1) for m in said] == ["1", "2", "3"]


def test_stop_stops_at_the_first_divergence_from_the_cli(tmp_path, capsys):
    code, out, err = run_cli(capsys, "fit", "digits", "--out", str(tmp_path / "run"), "--model", "vae",
                             "--set", "lr=1.0", "--set", "g_width=8", "--set", "e_width=8", "--steps", "40",
                             "--on-divergence", "stop", "--no-progress")
    assert code == 2 and out == ""
    assert re.fullmatch(r"synthaug fit: error: training diverged at step \d+: loss is (nan|inf|-inf); try a lower "
                        r"learning rate, or --on-divergence restart\n", err)
    assert "going back" not in err


def test_on_divergence_must_be_known():
    with pytest.raises(SynthaugError, match=r"^--on-divergence: expected one of restart, stop, got 'retry'$"):
        fit("digits", out="unused", on_divergence="retry")
