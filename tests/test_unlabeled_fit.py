"""fit(..., unlabeled=...) / ``synthaug fit --unlabeled``: every registered family learns from
unlabelled images, end to end, and bad unlabelled input is one line with exit code 2."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import synthaug
from conftest import TINY, expect_error, run_cli, snapshot, write_png
from synthaug.data import load_data, stratified_split
from synthaug.errors import SynthaugError


@pytest.fixture(scope="module")
def few_and_pool():
    """10% of digits:train labelled, the rest as an unlabelled pool (labels dropped)."""
    train = load_data("digits:train")
    rest, part = stratified_split(train.labels, 0.1, seed=0)
    return train.subset(part), train.subset(rest)


def _fit(data, out, family, **kw):
    return synthaug.fit(data, out=out, model=family, config=TINY[family]["config"], steps=4, batch_size=16,
                        checkpoint_every=2, sample_every=4, progress=False, **kw)


@pytest.mark.parametrize("family", synthaug.list_models())
def test_every_family_learns_from_unlabeled_images(family, few_and_pool, tmp_path):
    """A family that ignored ``unlabeled`` would refuse it, log no unlabelled term, or end with the
    same weights as without them."""
    few, pool = few_and_pool
    run = _fit(few, tmp_path / "with", family, unlabeled=pool, pseudo_labels=None)  # the family term alone
    plain = _fit(few, tmp_path / "without", family)
    assert run.card.dataset["unlabeled_size"] == len(pool) and plain.card.dataset["unlabeled_size"] == 0
    assert run.card.dataset["size"] == len(few)
    terms = {k: v for k, v in run.log()[-1].items() if k.startswith("unlabeled_")}
    assert terms and all(np.isfinite(v) for v in terms.values()), run.log()[-1]
    a, b = load_file(run.weights_path), load_file(plain.weights_path)
    assert a.keys() == b.keys() and any(not torch.equal(a[k], b[k]) for k in a)


def test_resume_with_unlabeled_equals_uninterrupted(few_and_pool, tmp_path):
    few, pool = few_and_pool
    straight = _fit(few, tmp_path / "straight", "gan", unlabeled=pool)
    synthaug.fit(few, out=tmp_path / "split", model="gan", config=TINY["gan"]["config"], steps=2, batch_size=16,
                 checkpoint_every=2, progress=False, unlabeled=pool)
    resumed = synthaug.fit(few, out=tmp_path / "split", resume=True, steps=4, checkpoint_every=2, progress=False,
                           unlabeled=pool)
    a, b = load_file(straight.weights_path), load_file(resumed.weights_path)
    assert all(torch.equal(a[k], b[k]) for k in a)
    # fit's default pseudo-labels are drawn again on resume: the same images get the same classes.
    assert resumed.card.training["pseudo_labels"] == straight.card.training["pseudo_labels"]
    with pytest.raises(SynthaugError, match="expected the unlabelled data it was fitted with"):
        synthaug.fit(few, out=tmp_path / "split", resume=True, steps=6, progress=False)


def test_unlabeled_images_are_converted_to_the_labelled_shape(few_and_pool, tmp_path, caplog):
    few, _ = few_and_pool
    rng = np.random.default_rng(0)
    path = tmp_path / "pool.npz"
    np.savez(path, images=rng.integers(0, 256, (20, 16, 16, 3), dtype=np.uint8))  # RGB 16x16, no labels
    run = _fit(few, tmp_path / "run", "gan", unlabeled=path, pseudo_labels=None)
    assert run.card.dataset["unlabeled_size"] == 20 and run.card.image_shape == [1, 8, 8]
    assert "converted 20 of 20 unlabelled image(s) to the labelled set's 1x8x8" in caplog.text


def _folder(root, classes=("a", "b"), per_class=3, size=8):
    for c in classes:
        for i in range(per_class):
            write_png(root / c / f"{i}.png", size=size, mode="L")
    return root


@pytest.mark.parametrize("make_unlabeled, needle", [
    (lambda d: d / "labelled", "overlaps the labelled data"),
    (lambda d: d / "labelled" / "a", "overlaps the labelled data"),
    (lambda d: (d / "empty").mkdir() or d / "empty", "expected at least one image, got none"),
    (lambda d: (d / "x.txt").write_text("no") and d / "x.txt", "expected an image folder or an .npz file"),
    (lambda d: np.savez(d / "nolabels.npz", pixels=np.zeros((2, 8, 8), np.uint8)) or d / "nolabels.npz",
     "expected an 'images' array"),
    (lambda d: d / "missing", "not found"),
    (lambda d: _folder(d / "run" / "pool"), "lies inside the run directory"),
], ids=["same_folder", "inside_labelled", "empty", "not_images", "npz_without_images", "missing", "inside_out"])
def test_bad_unlabeled_is_one_line_and_changes_nothing(tmp_path, capsys, make_unlabeled, needle):
    labelled = _folder(tmp_path / "labelled")
    unlabeled = make_unlabeled(tmp_path)
    before = snapshot(tmp_path)
    expect_error(capsys, "fit", [labelled, "--out", tmp_path / "run", "--unlabeled", unlabeled, "--model", "gan",
                                 "--steps", "2", "--no-progress"], needle)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("pool", [[], np.zeros((0, 8, 8), np.uint8)])
def test_an_empty_unlabelled_dataset_is_named(few_and_pool, tmp_path, pool):
    few, _ = few_and_pool
    with pytest.raises(SynthaugError, match=r"^unlabelled images: expected a non-empty dataset, got 0 items"):
        _fit(few, tmp_path / "run", "gan", unlabeled=pool)
    assert not (tmp_path / "run").exists()


def test_cli_fit_with_a_nested_unlabeled_folder(tmp_path, capsys):
    labelled = _folder(tmp_path / "labelled")
    pool = _folder(tmp_path / "pool" / "batch1", classes=("x", "y", "z"), per_class=2)  # nesting is ignored
    write_png(pool.parent / "loose.png", size=8, mode="L")
    rc, out, err = run_cli(capsys, "fit", labelled, "--out", tmp_path / "run", "--unlabeled", tmp_path / "pool",
                           "--model", "gan", "--steps", "2", "--no-progress")
    assert rc == 0, err
    import json

    assert json.loads(out)["unlabeled_size"] == 7
