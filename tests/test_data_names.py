"""Names of built-in sets (``digits``, ``photos``) against a user's paths of the same name.

A folder the user owns, named like a built-in set, is the user's data everywhere a data
source is read (fit, ``--unlabeled``, eval's ``--data``/``--test``, ``load_data``), with one
warning; ``NAME:train``/``NAME:test`` always name the built-in splits; built-in names overlap
by name (``digits`` holds ``digits:train``).
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from PIL import Image

from synthaug.data import load_data
from synthaug.data.unlabeled import load_unlabeled
from synthaug.errors import SynthaugError
from conftest import expect_error, run_cli

QUICK_FIT = ["--model", "gan", "--steps", "1", "--no-progress", "--set", "g_width=8", "--set", "d_width=8",
             "--batch-size", "8"]
QUICK_EVAL = ["--seeds", "2", "--doses", "0,0.5", "--steps", "4", "--reference-steps", "8", "--no-progress"]


def user_folder(root, name: str, classes=("cats", "dogs"), per_class: int = 6):
    """``root/name``: a 2-class RGB folder of 8x8 PNGs, nothing like the built-in set."""
    rng = np.random.default_rng(0)
    for c in classes:
        (root / name / c).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / name / c / f"{i}.png")
    return root / name


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("name", ["photos", "digits"])
def test_load_data_reads_a_users_folder_named_like_a_builtin_set_and_warns(in_tmp, caplog, name):
    user_folder(in_tmp, name)
    with caplog.at_level(logging.WARNING, logger="synthaug"):
        data = load_data(name)
    assert data.class_names == ["cats", "dogs"] and len(data) == 12
    assert any(f"reading {name!r} as the path ./{name}" in m and "built-in" in m for m in caplog.messages)
    split = load_data(f"{name}:train")  # the split names stay the built-in sets'
    assert split.class_names != ["cats", "dogs"]


def test_without_such_a_path_the_name_is_the_builtin_set(in_tmp, caplog):
    with caplog.at_level(logging.WARNING, logger="synthaug"):
        assert len(load_data("digits")) == 1797
    assert caplog.messages == []


def test_fit_on_a_users_photos_folder_fits_its_classes(in_tmp, capsys, caplog):
    user_folder(in_tmp, "photos")
    with caplog.at_level(logging.WARNING, logger="synthaug"):
        rc, out, err = run_cli(capsys, "fit", "photos", "--out", "runs/ph", *QUICK_FIT)
    assert rc == 0, err
    result = json.loads(out)
    assert result["num_classes"] == 2 and result["image_shape"] == [3, 8, 8]
    assert any("reading 'photos' as the path ./photos" in m for m in caplog.messages)


def test_the_run_inside_check_applies_to_a_folder_named_like_a_builtin_set(in_tmp, capsys):
    user_folder(in_tmp, "photos")
    expect_error(capsys, "fit", ["photos", "--out", "photos/run", *QUICK_FIT],
                 "lies inside the image folder photos")
    assert not (in_tmp / "photos" / "run").exists()


def test_unlabeled_and_eval_read_the_users_folder_too(in_tmp, capsys):
    user_folder(in_tmp, "digits", per_class=5)
    pool = load_unlabeled("digits", image_shape=(1, 8, 8))
    assert len(pool) == 10  # the user's 10 images, not the built-in 1797
    user_folder(in_tmp, "photos")
    rc, _, err = run_cli(capsys, "fit", "photos", "--out", "run", *QUICK_FIT)
    assert rc == 0, err
    rc, out, err = run_cli(capsys, "eval", "run", "--data", "photos", "--test", "photos", "--out", "report",
                           *QUICK_EVAL)
    assert rc == 0, err
    report = json.loads((in_tmp / "report" / "report.json").read_text())
    assert report["data"]["train"]["class_counts"] == [6, 6]
    assert report["data"]["test"]["class_counts"] == [6, 6]


@pytest.mark.parametrize("labelled,unlabelled", [
    ("digits:train", "digits"), ("digits", "digits:test"), ("digits:train", "digits:train"),
    ("photos", "photos:train")])
def test_overlapping_builtin_sets_are_refused(tmp_path, capsys, labelled, unlabelled):
    expect_error(capsys, "fit", [labelled, "--unlabeled", unlabelled, "--out", tmp_path / "run", *QUICK_FIT],
                 f"unlabeled data {unlabelled} overlaps the labelled data {labelled}")
    assert not (tmp_path / "run").exists()


def test_disjoint_builtin_splits_are_accepted():
    from synthaug.data.unlabeled import check_unlabeled_apart

    check_unlabeled_apart("digits:train", "digits:test")
    check_unlabeled_apart("photos:train", "digits")
    with pytest.raises(SynthaugError, match="overlaps"):
        check_unlabeled_apart("digits", "digits:test")
