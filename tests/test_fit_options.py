"""fit's options are one validated dataclass (``FitOptions``), its callbacks a small interface, and
its random streams one seed scheme recorded in the checkpoint."""

from __future__ import annotations

import inspect

import pytest
import torch

import synthaug
from conftest import TINY
from synthaug.errors import SynthaugError
from synthaug.layout import CHECKPOINT_FILE
from synthaug.seeding import SEED_SCHEME
from synthaug.train.callbacks import Callback
from synthaug.train.options import FitOptions
from synthaug.train.seeds import RunSeeds


def test_fit_takes_exactly_the_options_of_the_dataclass():
    params = inspect.signature(synthaug.fit).parameters
    assert [p for p in params if p not in ("data", "out")] == FitOptions.names()
    for name in FitOptions.names():
        default = FitOptions.__dataclass_fields__[name].default
        assert params[name].default == (None if name == "callbacks" else default), name


@pytest.mark.parametrize("options, needle", [
    ({"steps": 0}, "steps must be a positive integer, got 0"),
    ({"keep": "best"}, "keep='best' needs eval_every="),
    ({"class_balance": 2}, "class_balance: expected a number in [0, 1], got 2"),
    ({"callbacks": ["not a callback"]}, "callbacks: expected a list of synthaug.train.callbacks.Callback, got str"),
    ({"steps": 3, "epochs": 1}, "expected steps=... or epochs=..., got both"),
])
def test_bad_options_are_refused_before_anything_is_written(tmp_path, options, needle):
    with pytest.raises(SynthaugError) as info:
        synthaug.fit("digits", out=tmp_path / "run", progress=False, **options)
    assert needle in str(info.value)
    assert not (tmp_path / "run").exists()


class Recorder(Callback):
    """Every hook the loop calls, in order, with the step it was at."""

    def __init__(self):
        self.calls = []

    def on_fit_start(self, loop, total):
        self.calls.append(("start", loop.step, total))

    def due(self, loop, total):
        return loop.step == 2

    def on_step_end(self, loop, total):
        self.calls.append(("step", loop.step, len(loop.log_rows)))

    def on_logs(self, loop, rows):
        self.calls.append(("logs", [r["step"] for r in rows]))

    def on_grid(self, loop, images, per_row):
        self.calls.append(("grid", loop.step, tuple(images.shape)))

    def on_checkpoint(self, loop):
        self.calls.append(("checkpoint", loop.step))

    def on_fit_end(self, loop):
        self.calls.append(("end", loop.step))


def test_a_users_callback_sees_the_hooks_in_step_order(tmp_path):
    recorder = Recorder()
    synthaug.fit("digits", out=tmp_path / "run", config=TINY["dcgan"]["config"], steps=4, batch_size=16,
                 progress=False, sample_every=4, checkpoint_every=4, callbacks=[recorder])
    grid_rows = min(10, max(4, 64 // 10)) * 10
    assert recorder.calls == [
        ("start", 0, 4), ("step", 1, 0),
        ("logs", [1, 2]), ("step", 2, 2),  # its own due step makes the loop read the logs first
        ("step", 3, 2),
        ("logs", [3, 4]), ("grid", 4, (grid_rows, 1, 8, 8)), ("checkpoint", 4), ("step", 4, 4),
        ("end", 4)]


def test_a_new_run_records_its_seed_scheme_and_its_streams_are_apart(tmp_path):
    synthaug.fit("digits", out=tmp_path / "run", config=TINY["dcgan"]["config"], steps=1, progress=False)
    settings = torch.load(tmp_path / "run" / CHECKPOINT_FILE, weights_only=True)["settings"]
    assert settings["seed_scheme"] == SEED_SCHEME == 2
    seeds = RunSeeds(0, 2)
    streams = ["noise", "grid", "holdout", "features", "eval_noise", "pseudo_labels"]
    assert len({seeds(s) for s in streams}) == len(streams)
    old = RunSeeds(0, 1)  # scheme 1: the pseudo-labeller and the evaluation noise shared seed + 5
    assert old("pseudo_labels") == old("eval_noise") == 5


def test_a_checkpoint_with_an_unknown_seed_scheme_is_refused(tmp_path, capsys):
    from conftest import run_cli

    synthaug.fit("digits", out=tmp_path / "run", config=TINY["dcgan"]["config"], steps=1, progress=False)
    state = torch.load(tmp_path / "run" / CHECKPOINT_FILE, weights_only=True)
    state["settings"]["seed_scheme"] = 9
    torch.save(state, tmp_path / "run" / CHECKPOINT_FILE)
    code, _, err = run_cli(capsys, "fit", "digits", "--out", tmp_path / "run", "--resume", "--steps", "2")
    assert code == 2 and "seed_scheme is 9" in err
