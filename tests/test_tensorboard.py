"""``fit(log="tensorboard")`` / ``fit --log tensorboard``: the losses, the quality metrics and the
sample grids as TensorBoard events in ``<run>/tensorboard``, read back here with TensorBoard's
own reader; the folder is fit's own for ``--force`` only while it holds nothing else."""

from __future__ import annotations

import csv
import importlib.util
import io
import shutil

import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import synthaug
from conftest import TINY, run_cli, tiny_set_args
from synthaug.errors import SynthaugError
from synthaug.layout import LOG_FILE, TENSORBOARD_DIR

CFG = TINY["dcgan"]["config"]


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    out = tmp_path_factory.mktemp("tb") / "run"
    synthaug.fit("digits", out=out, config=CFG, steps=6, batch_size=32, progress=False, sample_every=3,
                 checkpoint_every=3, eval_every=3, log="tensorboard")
    events = EventAccumulator(str(out / TENSORBOARD_DIR), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    return out, events


def test_the_losses_are_the_log_csv_values_at_every_step(logged):
    out, events = logged
    with open(out / LOG_FILE, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for loss in ("loss_d", "loss_g", "d_real", "d_fake"):
        scalars = events.Scalars(f"train/{loss}")
        assert [s.step for s in scalars] == [1, 2, 3, 4, 5, 6]
        assert np.allclose([s.value for s in scalars], [float(r[loss]) for r in rows], atol=1e-5)


def test_the_quality_metrics_are_logged_where_measured(logged):
    out, events = logged
    with open(out / LOG_FILE, newline="") as fh:
        rows = {int(r["step"]): r for r in csv.DictReader(fh)}
    fid = events.Scalars("quality/fid")
    assert [s.step for s in fid] == [3, 6]
    assert np.allclose([s.value for s in fid], [float(rows[s]["fid"]) for s in (3, 6)], rtol=1e-5)
    assert {"quality/kid", "quality/precision", "quality/recall"} <= set(events.Tags()["scalars"])


def test_the_sample_grids_are_the_png_grids(logged):
    out, events = logged
    images = events.Images("samples")
    assert [i.step for i in images] == [3, 6]
    for image in images:
        logged_pixels = np.asarray(Image.open(io.BytesIO(image.encoded_image_string)).convert("L"))
        png = np.asarray(Image.open(out / f"samples_{image.step:06d}.png").convert("L"))
        assert np.array_equal(logged_pixels, png)


def test_force_replaces_a_run_with_its_tensorboard_folder_but_not_a_users_file_in_it(logged, tmp_path, capsys):
    out, _ = logged
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / TENSORBOARD_DIR / "notes.txt").write_text("mine")
    code, _, err = run_cli(capsys, "fit", "digits", "--out", copy, "--force", "--steps", "2", "--no-progress",
                           *tiny_set_args("dcgan"))
    assert code == 2 and "tensorboard/" in err and (copy / TENSORBOARD_DIR / "notes.txt").read_text() == "mine"
    (copy / TENSORBOARD_DIR / "notes.txt").unlink()
    code, out_json, err = run_cli(capsys, "fit", "digits", "--out", copy, "--force", "--steps", "2",
                                  "--no-progress", *tiny_set_args("dcgan"))
    assert code == 0, err
    assert not (copy / TENSORBOARD_DIR).exists()  # replaced by a run that logs nothing to TensorBoard


def test_the_cli_logs_to_tensorboard_and_refuses_an_unknown_logger(tmp_path, capsys):
    code, _, err = run_cli(capsys, "fit", "digits", "--out", tmp_path / "run", "--steps", "2", "--no-progress",
                           "--log", "tensorboard", *tiny_set_args("dcgan"))
    assert code == 0, err
    assert any((tmp_path / "run" / TENSORBOARD_DIR).glob("events.out.tfevents.*"))
    code, _, err = run_cli(capsys, "fit", "digits", "--out", tmp_path / "other", "--log", "wandb")
    assert code == 2 and "--log" in err and not (tmp_path / "other").exists()


def test_without_the_package_the_error_says_what_to_install(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    with pytest.raises(SynthaugError, match=r"synthaug\[tensorboard\]"):
        synthaug.fit("digits", out=tmp_path / "run", steps=2, progress=False, log="tensorboard")
    assert not (tmp_path / "run").exists()
    with pytest.raises(SynthaugError, match="log: expected one of tensorboard"):
        synthaug.fit("digits", out=tmp_path / "run", steps=2, progress=False, log="csv")
