"""fit on a non-finite loss: --on-divergence restart (default) goes back to the last good state
with halved learning rates, at most 3 times; stop stops at once.

The configuration forced to diverge is a family registered for these tests only: a generator
whose one weight ``w`` is trained by plain SGD on ``w**2``. Each step multiplies ``w`` by
``1 - 2 * lr``, so it grows without bound (to an infinite loss) when ``lr > 1`` and shrinks when
``lr < 1``: lr 1.5 diverges and its half, 0.75, does not; lr 10 diverges at 5, 2.5 and 1.25 too.
(The real families' defaults no longer diverge even at lr 1.0 on digits: Adam's step is bounded
by lr and the VAE's log-variance is bounded.)"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
import re

import pytest
import torch

from synthaug import fit
from synthaug.errors import SynthaugError
from synthaug.models import registry
from synthaug.models.base import ConditionalGenerator, GeneratorTrainer, Phase
from synthaug.models.config import param
from conftest import run_cli


@dataclasses.dataclass
class SquareConfig:
    lr: float = param(1.5, low=0.0, high=100.0)
    start: float = param(1e12, low=0.0, high=1e30, help="the weight's initial value")
    ema_decay: float = param(0.0, low=0.0, high=1.0)


class SquareGenerator(ConditionalGenerator):
    family = "square"
    image_sizes = (8,)

    def __init__(self, config, image_shape, num_classes):
        super().__init__(config, image_shape, num_classes)
        self.w = torch.nn.Parameter(torch.tensor(float(config.start)))

    def noise_spec(self):
        return {"name": "noise", "shape": [1], "distribution": "normal"}

    def forward(self, noise, labels):
        n = noise.shape[0]
        return torch.sigmoid(self.w * noise[:, :1, None, None]).expand(n, *self.image_shape)


class SquareTrainer(GeneratorTrainer):
    def __init__(self, config, image_shape, num_classes):
        super().__init__(config, image_shape, num_classes)
        self.generator = SquareGenerator(config, image_shape, num_classes)
        self.init_ema()
        self._opts = {"g": torch.optim.SGD(self.generator.parameters(), lr=config.lr)}

    def optimizers(self):
        return self._opts

    def phases(self, images, labels, rng, step, unlabeled=None):
        loss = self.generator.w ** 2
        yield Phase("g", loss, {"loss": loss.detach()})


@pytest.fixture(autouse=True)
def square_family(monkeypatch):
    """``square`` is registered for these tests only (the registry is left as it was)."""
    monkeypatch.setattr(registry, "_FAMILIES", dict(registry._FAMILIES))
    registry.register_model("square", config=SquareConfig, generator=SquareGenerator,
                            description="w**2 by SGD (tests only)")(SquareTrainer)



def test_restart_goes_back_halves_the_learning_rate_and_finishes(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="synthaug")
    run = fit("digits", out=tmp_path / "run", model="square", config={"lr": 1.5}, steps=60,
              checkpoint_every=20, sample_every=1000, progress=False)
    restarts = run.card.training["restarts"]
    assert len(restarts) >= 1
    first = restarts[0]
    assert first["back_to"] < first["diverged_at"] < first["back_to"] + 20 and first["back_to"] % 20 == 0
    assert [r["lr_scale"] for r in restarts] == [0.5 ** (i + 1) for i in range(len(restarts))]
    said = [r.getMessage() for r in caplog.records if "going back" in r.getMessage()]
    assert len(said) == len(restarts)
    assert re.fullmatch(rf"training diverged at step {first['diverged_at']}: loss is (nan|inf|-inf); going back to "
                        rf"step {first['back_to']} with the learning rates halved \(restart 1 of 3: 0.5 of the starting ones\)",
                        said[0])
    # The log holds each step once, all finite: the diverged steps were replayed, not kept.
    rows = list(csv.DictReader((run.path / "log.csv").open()))
    assert [int(r["step"]) for r in rows] == list(range(1, 61))
    assert all(math.isfinite(float(r["loss"])) for r in rows)
    state = torch.load(run.path / "checkpoint.pt", weights_only=True)
    lrs = {g["lr"] for g in state["optimizers"]["g"]["param_groups"]}
    # w = 1e12 * 2**k: w**2 overflows float32 at step 25, so fit goes back to its checkpoint at 20.
    assert restarts == [{"diverged_at": 25, "back_to": 20, "lr_scale": 0.5}]
    assert lrs == {0.75}
    assert torch.isfinite(run.sampler().sample([0, 1, 2], seed=0)).all()


def test_restart_gives_up_after_three(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="synthaug")
    with pytest.raises(SynthaugError, match=r"^training diverged at step \d+: loss is (nan|inf|-inf), after 3 "
                                            r"restarts with halved learning rates; try a lower learning rate$"):
        fit("digits", out=tmp_path / "run", model="square", config={"lr": 10.0}, steps=100,
            checkpoint_every=200, progress=False)
    said = [r.getMessage() for r in caplog.records if "going back" in r.getMessage()]
    # Each restart went back to step 0 (no checkpoint yet): the rates halve from the start's each time.
    assert [re.search(r"restart (\d) of 3: ([\d.]+) of", m).groups() for m in said] == \
        [("1", "0.5"), ("2", "0.25"), ("3", "0.125")]


def test_stop_stops_at_the_first_divergence_from_the_cli(tmp_path, capsys):
    code, out, err = run_cli(capsys, "fit", "digits", "--out", str(tmp_path / "run"), "--model", "square",
                             "--set", "lr=10.0", "--steps", "40",
                             "--on-divergence", "stop", "--no-progress")
    assert code == 2 and out == ""
    assert re.fullmatch(r"synthaug fit: error: training diverged at step \d+: loss is (nan|inf|-inf); try a lower "
                        r"learning rate, or --on-divergence restart\n", err)
    assert "going back" not in err


def test_on_divergence_must_be_known():
    with pytest.raises(SynthaugError, match=r"^on_divergence: expected one of restart, stop, got 'retry'$"):
        fit("digits", out="unused", on_divergence="retry")
