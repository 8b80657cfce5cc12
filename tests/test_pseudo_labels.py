"""fit --pseudo-labels: confident unlabelled images join the labelled set, visibly (card, stderr),
deterministically, and can be switched off; bad thresholds are one line with exit code 2."""

from __future__ import annotations

import json

import pytest
import torch

import synthaug
from conftest import TINY, expect_error, run_cli, snapshot
from synthaug.data import load_data, stratified_split
from synthaug.data.unlabeled import load_unlabeled
from synthaug.errors import SynthaugError
from synthaug.train.pseudo_labels import DEFAULT_THRESHOLD, pseudo_label
from synthaug.train.seeds import RunSeeds


@pytest.fixture(scope="module")
def few_and_pool():
    """5% of digits:train labelled; digits:test (labels dropped) as the unlabelled pool."""
    train = load_data("digits:train")
    return train.subset(stratified_split(train.labels, 0.05, seed=0)[1]), load_data("digits:test")


def _fit(data, out, **kw):
    return synthaug.fit(data, out=out, model="gan", config=TINY["gan"]["config"], steps=4, batch_size=16,
                        checkpoint_every=2, sample_every=4, progress=False, **kw)


def test_confident_images_join_the_labelled_set_and_the_card_says_so(few_and_pool, tmp_path, caplog):
    few, pool = few_and_pool
    caplog.set_level("INFO", logger="synthaug")
    run = _fit(few, tmp_path / "run", unlabeled=pool)
    record = run.card.training["pseudo_labels"]
    assert record["threshold"] == DEFAULT_THRESHOLD and record["pool"] == len(pool)
    assert sum(record["per_class"].values()) == record["labelled"] and 0 < record["labelled"] < len(pool)
    assert list(record["per_class"]) == list(few.class_names)
    assert all(DEFAULT_THRESHOLD <= c <= 1 for c in record["mean_confidence"].values())
    # The generator's class term trains on the labels and the pseudo-labels; the rest stay unlabelled.
    assert run.card.training["train_size"] == len(few) + record["labelled"]
    assert run.card.dataset["size"] == len(few) and run.card.dataset["unlabeled_size"] == len(pool)
    assert f"pseudo-labelled {record['labelled']} of {len(pool)} unlabelled image(s) at confidence >= 0.9" \
        in caplog.text
    # The labels it gave are mostly right (digits:test's own labels, which fit never saw).
    found = pseudo_label(few, load_unlabeled(pool, few.image_shape), DEFAULT_THRESHOLD,
                         seed=RunSeeds(run.card.training["seed"])("pseudo_labels"))
    assert len(found.indices) == record["labelled"]
    assert (found.labels == pool.labels[found.indices]).float().mean() > 0.9


def test_pseudo_labels_off_and_thresholds(few_and_pool, tmp_path):
    few, pool = few_and_pool
    off = _fit(few, tmp_path / "off", unlabeled=pool, pseudo_labels=None)
    assert "pseudo_labels" not in off.card.training and off.card.training["train_size"] == len(few)
    zero = _fit(few, tmp_path / "zero", unlabeled=pool, pseudo_labels=0)
    assert "pseudo_labels" not in zero.card.training
    strict = _fit(few, tmp_path / "strict", unlabeled=pool, pseudo_labels=0.999)
    loose = _fit(few, tmp_path / "loose", unlabeled=pool, pseudo_labels=0.5)
    assert strict.card.training["pseudo_labels"]["labelled"] < loose.card.training["pseudo_labels"]["labelled"]
    plain = _fit(few, tmp_path / "plain")  # no unlabelled images: nothing to label, whatever the threshold
    assert "pseudo_labels" not in plain.card.training


def test_same_seed_same_pseudo_labels(few_and_pool):
    few, pool = few_and_pool
    images = load_unlabeled(pool, few.image_shape)
    a, b = (pseudo_label(few, images, 0.9, seed=3, steps=60) for _ in range(2))
    assert torch.equal(a.indices, b.indices) and torch.equal(a.labels, b.labels)
    assert torch.equal(a.confidence, b.confidence)


@pytest.mark.parametrize("value", [1.5, -0.1, "high", True])
def test_bad_threshold_in_the_api(few_and_pool, tmp_path, value):
    few, pool = few_and_pool
    with pytest.raises(SynthaugError, match=r"pseudo_labels: expected a confidence threshold in \[0, 1\]"):
        _fit(few, tmp_path / "run", unlabeled=pool, pseudo_labels=value)
    assert not (tmp_path / "run").exists()


def test_cli_pseudo_labels(tmp_path, capsys, caplog):
    caplog.set_level("INFO", logger="synthaug")  # pytest's handler stands in for the CLI's stderr one
    args = ["digits:train", "--model", "gan", "--steps", "2", "--no-progress", "--unlabeled", "digits:test",
            "--set", "g_width=8", "--set", "d_width=8"]
    rc, out, err = run_cli(capsys, "fit", *args, "--out", tmp_path / "on")
    assert rc == 0, err
    labelled = json.loads(out)["pseudo_labelled"]
    assert f"pseudo-labelled {labelled} of 450 unlabelled image(s)" in caplog.text
    caplog.clear()
    rc, out, err = run_cli(capsys, "fit", *args, "--out", tmp_path / "off", "--pseudo-labels", "off")
    assert rc == 0 and "pseudo_labelled" not in json.loads(out) and "pseudo-labelled" not in caplog.text
    before = snapshot(tmp_path)
    expect_error(capsys, "fit", [*args, "--out", tmp_path / "bad", "--pseudo-labels", "2"],
                 "pseudo_labels: expected a confidence threshold in [0, 1]")
    expect_error(capsys, "fit", [*args, "--out", tmp_path / "bad", "--pseudo-labels", "most"],
                 "pseudo_labels: expected a confidence threshold in [0, 1] (0 or None: off), got 'most'")
    assert snapshot(tmp_path) == before


def test_cli_pseudo_labels_without_unlabeled_is_refused(tmp_path, capsys):
    for value in ("0.5", "off"):
        expect_error(capsys, "fit", ["digits:train", "--model", "gan", "--steps", "2", "--no-progress",
                                     "--pseudo-labels", value, "--out", tmp_path / "run"],
                     "--pseudo-labels", "needs --unlabeled")
    assert not (tmp_path / "run").exists()
    with pytest.raises(SynthaugError, match=r"^pseudo_labels=0\.5 needs unlabeled=\.\.\.: "):
        _fit(load_data("digits:train"), tmp_path / "api", pseudo_labels=0.5)


@pytest.mark.parametrize("first,again,accepted", [
    ([], ["--pseudo-labels", "0.5"], False),                    # started at the default 0.9
    (["--pseudo-labels", "0.5"], ["--pseudo-labels", "0.9"], False),
    (["--pseudo-labels", "0.5"], ["--pseudo-labels", "off"], False),
    (["--pseudo-labels", "0.5"], [], True),                    # left out: the run's own threshold
    (["--pseudo-labels", "0.5"], ["--pseudo-labels", "0.5"], True),
])
def test_resume_refuses_a_changed_pseudo_label_threshold(tmp_path, capsys, first, again, accepted):
    args = ["digits:train", "--model", "gan", "--no-progress", "--unlabeled", "digits:test", "--set", "g_width=8",
            "--set", "d_width=8", "--batch-size", "8", "--checkpoint-every", "1", "--out", tmp_path / "run"]
    rc, _, err = run_cli(capsys, "fit", *args, "--steps", "1", *first)
    assert rc == 0, err
    stored = synthaug.Run(tmp_path / "run").card.training["pseudo_labels"]["threshold"]
    if accepted:
        rc, out, err = run_cli(capsys, "fit", *args, "--steps", "2", "--resume", *again)
        assert rc == 0, err
        assert json.loads(out)["steps"] == 2
    else:
        before = snapshot(tmp_path)
        expect_error(capsys, "fit", [*args, "--steps", "2", "--resume", *again],
                     f"--pseudo-labels {again[1] if again[1] == 'off' else float(again[1])} (checkpoint: {stored})")
        assert snapshot(tmp_path) == before
    assert synthaug.Run(tmp_path / "run").card.training["pseudo_labels"]["threshold"] == stored
