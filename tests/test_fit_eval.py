"""fit --eval-every N / --keep best: quality metrics in log.csv during training, and the run
keeping the generator of the evaluation step with the lowest FID.

The feature network trains for a few steps and judges 100 generated images here (monkeypatched),
so every fit in this module costs a second or two.
"""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch
from safetensors.torch import load_file

import synthaug
import synthaug.atomic
from conftest import TINY, expect_error, run_cli, snapshot, tiny_set_args, write_npz
from synthaug.metrics import monitor
from synthaug.layout import CARD_FILE, CHECKPOINT_FILE, FEATURES_FILE, LOG_FILE, WEIGHTS_FILE

# A learning rate too high for the generator: its FID worsens after the first evaluation, so
# --keep best has an earlier generator to keep (measured: about 11, 22, 41 at steps 2, 4, 6).
TINY_CFG = {**TINY["dcgan"]["config"], "lr_g": 0.05}
METRICS = ["fid", "kid", "precision", "recall"]
STEPS, EVERY = 6, 2
EVAL_STEPS = [2, 4, 6]
FIT = {"config": TINY_CFG, "batch_size": 32, "progress": False, "sample_every": 100, "checkpoint_every": 3}


@pytest.fixture(scope="module", autouse=True)
def small_evaluation():
    """A feature network of 30 steps and 100 generated images per evaluation (FID needs > 64)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(monitor, "FEATURE_STEPS", 30)
        mp.setattr(monitor, "EVAL_SAMPLES", 100)
        yield


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Fits of digits that the read-only tests share: same seed, with and without evaluation."""
    root = tmp_path_factory.mktemp("fit_eval")
    return {
        "plain": synthaug.fit("digits", out=root / "plain", steps=STEPS, **FIT),
        "last": synthaug.fit("digits", out=root / "last", steps=STEPS, eval_every=EVERY, **FIT),
        "best": synthaug.fit("digits", out=root / "best", steps=STEPS, eval_every=EVERY, keep="best", **FIT),
    }


def read_log(run) -> list[dict[str, str]]:
    with open(run.path / LOG_FILE, newline="") as fh:
        return list(csv.DictReader(fh))


def weights(path) -> dict[str, torch.Tensor]:
    return load_file(path / WEIGHTS_FILE if path.is_dir() else path)


def assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def fids(run) -> dict[int, float]:
    return {int(r["step"]): float(r["fid"]) for r in read_log(run) if r["fid"]}


# --------------------------------------------------------------------------- the log and the card


@pytest.mark.parametrize("name", ["last", "best"])
def test_log_has_the_metrics_exactly_at_the_evaluation_steps(runs, name):
    rows = read_log(runs[name])
    assert [int(r["step"]) for r in rows] == list(range(1, STEPS + 1))
    assert set(METRICS) <= rows[0].keys()
    for row in rows:
        values = [row[m] for m in METRICS]
        if int(row["step"]) in EVAL_STEPS:
            assert all(math.isfinite(float(v)) for v in values), row
            assert 0 <= float(row["precision"]) <= 1 and 0 <= float(row["recall"]) <= 1
            assert float(row["fid"]) >= 0
        else:
            assert values == ["", "", "", ""], row


def test_card_holds_the_latest_metrics_with_keep_last(runs):
    card = runs["last"].card
    last_row = read_log(runs["last"])[-1]
    assert card.metrics == {m: float(last_row[m]) for m in METRICS}
    assert card.training["eval_every"] == EVERY and card.training["keep"] == "last"
    assert "kept_step" not in card.training
    assert (runs["last"].path / FEATURES_FILE).is_file()


def test_without_eval_every_nothing_changes(runs):
    assert not set(METRICS) & read_log(runs["plain"])[0].keys()
    assert runs["plain"].card.metrics == {} and "eval_every" not in runs["plain"].card.training
    assert not (runs["plain"].path / FEATURES_FILE).exists()


def test_eval_every_does_not_change_the_trained_weights(runs):
    assert_same_tensors(weights(runs["last"].path), weights(runs["plain"].path))
    a = torch.load(runs["last"].path / CHECKPOINT_FILE, weights_only=True)
    b = torch.load(runs["plain"].path / CHECKPOINT_FILE, weights_only=True)
    assert_same_tensors(a["trainer"], b["trainer"])
    assert torch.equal(a["rng"], b["rng"])


# --------------------------------------------------------------------------- --keep best


def test_keep_best_keeps_the_generator_of_the_lowest_fid(runs, tmp_path):
    best = runs["best"]
    by_step = fids(best)
    assert sorted(by_step) == EVAL_STEPS
    kept = min(by_step, key=by_step.get)
    assert kept < STEPS, f"these settings should find the best FID before the last step: {by_step}"
    card = best.card
    assert card.training["kept_step"] == kept and card.training["keep"] == "best"
    assert card.training["steps"] == STEPS
    assert card.metrics["fid"] == by_step[kept] == min(by_step.values())
    assert json.loads((best.path / CARD_FILE).read_text())["training"]["kept_step"] == kept
    # The kept weights are the EMA generator after exactly `kept` steps of the same fit.
    reference = synthaug.fit("digits", out=tmp_path / "ref", steps=kept, **FIT)
    assert_same_tensors(weights(best.path), weights(reference.path))
    # The checkpoint still holds the last step, for --resume: the same training state as a plain fit.
    ckpt = torch.load(best.path / CHECKPOINT_FILE, weights_only=True)
    plain = torch.load(runs["plain"].path / CHECKPOINT_FILE, weights_only=True)
    assert ckpt["step"] == STEPS
    assert_same_tensors(ckpt["trainer"], plain["trainer"])
    assert ckpt["kept"]["step"] == kept


def test_resume_with_eval_every_equals_uninterrupted_and_reuses_the_feature_network(runs, tmp_path, monkeypatch):
    out = tmp_path / "run"
    first = synthaug.fit("digits", out=out, steps=4, eval_every=EVERY, keep="best", **FIT)
    by_step = fids(first)
    kept_before = min(by_step, key=by_step.get)
    features = (out / FEATURES_FILE).read_bytes()

    def no_training(*args, **kwargs):
        raise AssertionError("--resume trained the feature network again instead of reading it")

    monkeypatch.setattr(monitor, "reference_classifier", no_training)
    resumed = synthaug.fit("digits", out=out, resume=True, steps=STEPS, progress=False)
    uninterrupted = runs["best"]
    assert_same_tensors(weights(out), weights(uninterrupted.path))
    assert resumed.card.training["kept_step"] == uninterrupted.card.training["kept_step"] == kept_before
    assert resumed.card.metrics == uninterrupted.card.metrics
    assert [{m: r[m] for m in ["step", *METRICS]} for r in read_log(resumed)] == \
           [{m: r[m] for m in ["step", *METRICS]} for r in read_log(uninterrupted)]
    assert (out / FEATURES_FILE).read_bytes() == features


@pytest.mark.parametrize("damage", ["delete", "truncate"])
def test_resume_without_a_readable_feature_network_trains_it_again(runs, tmp_path, caplog, damage):
    out = tmp_path / "run"
    synthaug.fit("digits", out=out, steps=4, eval_every=EVERY, keep="best", **FIT)
    good = (out / FEATURES_FILE).read_bytes()
    state = torch.load(out / FEATURES_FILE, weights_only=True)["state"]
    if damage == "delete":
        (out / FEATURES_FILE).unlink()
    else:
        (out / FEATURES_FILE).write_bytes(good[:100])
    resumed = synthaug.fit("digits", out=out, resume=True, steps=STEPS, progress=False)
    assert ("ignoring cached feature network" in caplog.text) == (damage == "truncate")
    assert fids(resumed) == fids(runs["best"])  # the same seed trains the same network
    # Written again with the next checkpoint (its bytes differ: the archive is named after the temp file).
    assert_same_tensors(torch.load(out / FEATURES_FILE, weights_only=True)["state"], state)


def test_checkpoint_writes_keep_the_order_that_makes_a_kill_safe(tmp_path, monkeypatch):
    written = []
    original = synthaug.atomic.atomic_path

    def recording(target):
        written.append(str(target).rsplit("/", 1)[-1])
        return original(target)

    monkeypatch.setattr(synthaug.atomic, "atomic_path", recording)
    synthaug.fit("digits", out=tmp_path / "run", steps=2, eval_every=2, keep="best",
                 **{**FIT, "checkpoint_every": 2})
    # The feature network after the card (--force knows it as fit's own only beside a card),
    # the checkpoint that --resume reads last.
    assert [w for w in written if not w.startswith("samples_")] == \
           [LOG_FILE, WEIGHTS_FILE, CARD_FILE, FEATURES_FILE, CHECKPOINT_FILE]


def test_force_replaces_a_run_holding_a_feature_network(runs, tmp_path):
    out = tmp_path / "run"
    synthaug.fit("digits", out=out, steps=2, eval_every=2, **FIT)
    assert (out / FEATURES_FILE).is_file()
    synthaug.fit("digits", out=out, steps=2, force=True, **FIT)
    assert not (out / FEATURES_FILE).exists()


# --------------------------------------------------------------------------- the CLI and bad input


FAST = ["--steps", "4", "--no-progress", "--batch-size", "32", "--checkpoint-every", "2", "--sample-every", "100",
        *tiny_set_args("dcgan"), "--set", "lr_g=0.05"]


def test_cli_end_to_end(capsys, tmp_path):
    out = tmp_path / "run"
    rc, stdout, err = run_cli(capsys, "fit", "digits", "--out", out, "--eval-every", "2", "--keep", "best", *FAST)
    assert rc == 0, err
    result = json.loads(stdout)
    by_step = {int(r["step"]): float(r["fid"]) for r in read_log(synthaug.Run(out)) if r["fid"]}
    assert sorted(by_step) == [2, 4]
    assert result["kept_step"] == min(by_step, key=by_step.get)
    assert result["metrics"]["fid"] == min(by_step.values())
    assert set(METRICS) <= result["metrics"].keys()
    assert synthaug.load(out).sample([0, 9], seed=0).shape == (2, 1, 8, 8)


def test_keep_best_without_eval_every_is_one_line_exit_2(capsys, tmp_path):
    out = tmp_path / "run"
    expect_error(capsys, "fit", ["digits", "--out", out, "--keep", "best", *FAST],
                 "--keep best needs --eval-every N", "got no --eval-every")
    assert not out.exists()


@pytest.mark.parametrize("kwargs, needles", [
    ({"keep": "best"}, ["keep='best' needs eval_every=N", "got eval_every=None"]),
    ({"keep": "worst", "eval_every": 2}, ["keep: expected one of last, best, got 'worst'"]),
    ({"eval_every": 0}, ["eval_every must be a positive integer, got 0"]),
    ({"eval_every": True}, ["eval_every must be a positive integer, got True"]),
])
def test_bad_options_are_refused_before_anything_is_written(tmp_path, kwargs, needles):
    with pytest.raises(synthaug.SynthaugError) as info:
        synthaug.fit("digits", out=tmp_path / "run", steps=2, **{**FIT, **kwargs})
    for needle in needles:
        assert needle in str(info.value)
    assert not (tmp_path / "run").exists()


def test_keep_best_needs_more_training_images_than_feature_dimensions(tmp_path):
    data = write_npz(tmp_path / "small.npz", n=24)
    with pytest.raises(synthaug.SynthaugError, match="needs at least 65 training images, got 24"):
        synthaug.fit(data, out=tmp_path / "run", steps=2, eval_every=1, keep="best", **FIT)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name, argv, needle", [
    ("best", ["--eval-every", "3"], "--eval-every 3 (checkpoint: 2)"),
    ("best", ["--keep", "last"], "--keep last (checkpoint: best)"),
    ("plain", ["--eval-every", "2"], "--eval-every 2 (checkpoint: off)"),
    ("plain", ["--keep", "best"], "--keep best (checkpoint: last)"),
])
def test_resume_refuses_other_evaluation_options(capsys, runs, name, argv, needle):
    path = runs[name].path
    before = snapshot(path)
    expect_error(capsys, "fit", ["digits", "--out", path, "--resume", "--steps", "8", "--no-progress", *argv],
                 "cannot resume", needle)
    assert snapshot(path) == before
