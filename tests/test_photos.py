"""The built-in colour set ``photos`` (patches of scikit-learn's two sample photographs)."""

from __future__ import annotations

import json

import pytest
import torch

from synthaug.data import BUILTIN_SETS, load_data
from conftest import run_cli

NAMES = ["china-top", "china-middle", "china-bottom", "flower-top", "flower-middle", "flower-bottom"]


def test_photos_splits_are_stratified_disjoint_and_cover_the_set():
    whole, train, test = (load_data(f"photos{s}") for s in ("", ":train", ":test"))
    assert (len(whole), len(train), len(test)) == (480, 360, 120)
    assert train.image_shape == (3, 32, 32) and train.pixel_max == 255 and train.images.dtype == torch.uint8
    assert train.class_names == NAMES and test.class_names == NAMES
    assert train.class_counts() == [60] * 6 and test.class_counts() == [20] * 6
    key = lambda d: {bytes(d.images[i].numpy()) for i in range(len(d))}  # noqa: E731
    assert key(train).isdisjoint(key(test)) and key(train) | key(test) == key(whole)
    assert torch.equal(load_data("photos:train").images, train.images)  # the same split every time


def test_photos_are_colour_photographs_not_flat_fills():
    train = load_data("photos:train").as_float()
    per_image_std = train.flatten(1).std(dim=1)
    channel_gap = (train[:, 0] - train[:, 2]).abs().mean()
    # Texture in most patches (a few of the sky are nearly flat) and real colour, not grey.
    assert per_image_std.median() > 0.05 and channel_gap > 0.05


@pytest.mark.parametrize("name", [n for n in BUILTIN_SETS if n.startswith("photos")])
def test_cli_fits_the_builtin_colour_set(name, tmp_path, capsys):
    rc, out, err = run_cli(capsys, "fit", name, "--out", tmp_path / "run", "--model", "gan", "--steps", "2",
                           "--no-progress", "--set", "g_width=8", "--set", "d_width=8")
    assert rc == 0, err
    result = json.loads(out)
    assert result["image_shape"] == [3, 32, 32] and result["num_classes"] == 6
    card = json.loads((tmp_path / "run" / "card.json").read_text())
    assert card["class_names"] == NAMES and card["dataset"]["name"] == name
    assert sum(card["dataset"]["class_counts"]) == {"photos": 480, "photos:train": 360, "photos:test": 120}[name]
