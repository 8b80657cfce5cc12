"""fit's defaults depend on the data: narrower convolutional networks from 32x32 up, and fewer
steps for small 32x32 sets; the user's own values win, resume keeps what the run started with,
and 8x8 runs record what they always did."""

from __future__ import annotations

import logging

import pytest

from conftest import write_npz
from synthaug import fit
from synthaug.train.fit import default_steps
from synthaug.models.widths import default_width


@pytest.mark.parametrize("family, keys", [("dcgan", ("g_width", "d_width")), ("vae", ("g_width", "e_width"))])
def test_32x32_fits_narrower_networks_by_default_and_says_so(tmp_path, caplog, family, keys):
    caplog.set_level(logging.INFO, logger="synthaug")
    data = write_npz(tmp_path / "d.npz", n=12, size=32)
    run = fit(data, out=tmp_path / "run", model=family, steps=1, progress=False)
    assert all(run.card.config[k] == 32 for k in keys)
    said = [r.getMessage() for r in caplog.records if "by default" in r.getMessage()]
    assert said == [f"fit: 32x32 images: {keys[0]} 32, {keys[1]} 32 by default (config=... to choose)"]


def test_the_users_width_wins_and_resume_keeps_the_chosen_one(tmp_path):
    data = write_npz(tmp_path / "d.npz", n=12, size=32)
    run = fit(data, out=tmp_path / "run", config={"g_width": 8}, steps=1, progress=False)
    assert (run.card.config["g_width"], run.card.config["d_width"]) == (8, 32)
    resumed = fit(data, out=tmp_path / "run", steps=2, resume=True, progress=False)
    assert (resumed.card.config["g_width"], resumed.card.config["d_width"]) == (8, 32)
    assert resumed.card.training["steps"] == 2


def test_8x8_runs_keep_the_fixed_defaults(tmp_path):
    run = fit("digits", out=tmp_path / "run", steps=1, progress=False, config={"d_width": 8})
    assert run.card.config["g_width"] == 64


@pytest.mark.parametrize("size, n, steps", [(8, 1347, 3000), (16, 500, 3000), (32, 1000, 1500), (32, 1999, 1500),
                                            (32, 2000, 3000), (64, 300, 1500)])
def test_default_steps_by_image_and_data_size(size, n, steps):
    assert default_steps(size, n) == steps


def test_default_width_halves_as_the_side_doubles():
    assert [default_width(s) for s in (8, 16, 32, 64)] == [64, 64, 32, 16]
