"""The README's CLI path, end to end, through the real console entry point."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

import synthaug
from conftest import FAST_FIT, tiny_set_args
from synthaug.cli import main


def cli(*args: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "synthaug", *args], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else {"text": proc.stdout}


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    run = tmp / "run"
    summary = cli("fit", "digits", "--model", "dcgan", "--out", str(run), *FAST_FIT, *tiny_set_args("dcgan"))
    return tmp, run, summary


def test_fit_summary_and_files(cli_run):
    tmp, run, summary = cli_run
    assert summary["run"] == str(run) and summary["steps"] == 4 and summary["image_shape"] == [1, 8, 8]
    assert sorted(p.name for p in run.glob("samples_*.png")) == ["samples_000002.png", "samples_000004.png"]


def test_export_then_sample_grid_from_onnx(cli_run):
    tmp, run, _ = cli_run
    result = cli("export", str(run), "--out", str(tmp / "model.onnx"))
    assert result["max_abs_diff"] <= 1e-4
    out = cli("sample", str(tmp / "model.onnx"), "--per-class", "3", "--out", str(tmp / "grid.png"),
              "--classes", "3,7", "--seed", "1")
    assert out["count"] == 6 and out["classes"] == [3, 7]
    grid = Image.open(tmp / "grid.png")
    # 2 rows (one per class) of 3 cells, each 8x8 enlarged to 32x32, 1px gaps.
    assert grid.size == (3 * 33 + 1, 2 * 33 + 1)


def test_sample_npz_is_fit_input_in_dataset_pixels(cli_run, tmp_path):
    _, run, _ = cli_run
    cli("sample", str(run), "--per-class", "4", "--out", str(tmp_path / "s.npz"), "--seed", "2")
    with np.load(tmp_path / "s.npz") as npz:
        assert npz["images"].shape == (40, 8, 8) and npz["images"].dtype == np.uint8
        assert npz["images"].max() <= 16 and int(npz["pixel_max"]) == 16
        assert npz["labels"].tolist() == [c for c in range(10) for _ in range(4)]
        assert list(npz["class_names"]) == [str(i) for i in range(10)]
    rerun = synthaug.fit(tmp_path / "s.npz", out=tmp_path / "rerun", config={"g_width": 8, "d_width": 8},
                         steps=1, batch_size=8, progress=False)
    assert rerun.card.output["pixel_max"] == 16 and rerun.card.num_classes == 10


def test_sample_seed_gives_same_pixels_on_run_and_onnx(cli_run, tmp_path):
    tmp, run, _ = cli_run
    if not (tmp / "model.onnx").exists():
        cli("export", str(run), "--out", str(tmp / "model.onnx"))
    cli("sample", str(run), "--per-class", "2", "--out", str(tmp_path / "a.npz"), "--seed", "5")
    cli("sample", str(tmp / "model.onnx"), "--per-class", "2", "--out", str(tmp_path / "b.npz"), "--seed", "5")
    a, b = np.load(tmp_path / "a.npz")["images"], np.load(tmp_path / "b.npz")["images"]
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1  # rounding at a pixel boundary at most


def test_info_text_and_json(cli_run, capsys):
    tmp, run, _ = cli_run
    assert main(["info", str(run)]) == 0
    text = capsys.readouterr().out
    assert "family:        dcgan" in text and "classes:       10" in text and "round(x * 16)" in text
    assert main(["info", str(run), "--json"]) == 0
    card = synthaug.GeneratorCard.from_json(capsys.readouterr().out)
    assert card == synthaug.Run(run).card


def test_onnx_metadata_holds_the_card(cli_run):
    tmp, run, _ = cli_run
    if not (tmp / "model.onnx").exists():
        cli("export", str(run), "--out", str(tmp / "model.onnx"))
    props = {p.key: p.value for p in onnx.load(str(tmp / "model.onnx")).metadata_props}
    assert synthaug.GeneratorCard.from_json(props["synthaug.card"]) == synthaug.Run(run).card
    sampler = synthaug.load(tmp / "model.onnx")
    assert isinstance(sampler, synthaug.OnnxSampler)
    assert sampler.sample(torch.tensor([1, 2]), seed=0).shape == (2, 1, 8, 8)


def test_models_lists_the_registry(capsys):
    assert main(["models"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert sorted(listed) == synthaug.list_models()
    assert listed["dcgan"]["image_sizes"] == [8, 16, 32, 64]
