"""fit(): the run directory, resume equals uninterrupted, crash safety, every data source, the holdout split."""

from __future__ import annotations

import csv
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import synthaug
from conftest import FAST_FIT, TINY, tiny_set_args, write_npz
from synthaug.data import stratified_split
from synthaug.layout import CHECKPOINT_FILE, WEIGHTS_FILE
from synthaug.train.loop import holdout_split

TINY_CFG = TINY["dcgan"]["config"]


def test_run_directory_contents(digits_run):
    path = digits_run.path
    for name in ("card.json", "generator.safetensors", "checkpoint.pt", "log.csv",
                 "samples_000003.png", "samples_000006.png"):
        assert (path / name).is_file(), name
    card = digits_run.card
    assert card.family == "dcgan" and card.image_shape == [1, 8, 8] and card.num_classes == 10
    assert card.training["steps"] == 6 and card.dataset["size"] == 1797
    assert card.output["pixel_max"] == 16
    assert card.dataset["class_counts"] == np.bincount(synthaug.load_data("digits").labels).tolist()
    assert synthaug.GeneratorCard.from_json((path / "card.json").read_text()) == card
    rows = digits_run.log()
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert {"loss_d", "loss_g"} <= rows[0].keys()
    # One row per class in the grid.
    grid = Image.open(path / "samples_000006.png")
    assert grid.height > grid.width


def test_resume_in_new_process_equals_uninterrupted(tmp_path):
    straight = synthaug.fit("digits", out=tmp_path / "a", config=TINY_CFG, steps=8, batch_size=32,
                            progress=False, checkpoint_every=4)
    synthaug.fit("digits", out=tmp_path / "b", config=TINY_CFG, steps=4, batch_size=32, progress=False)
    subprocess.run([sys.executable, "-m", "synthaug", "fit", "digits", "--out", str(tmp_path / "b"),
                    "--resume", "--steps", "8", "--no-progress"], check=True, capture_output=True)
    a, b = load_file(straight.weights_path), load_file(tmp_path / "b" / WEIGHTS_FILE)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ca = torch.load(tmp_path / "a" / CHECKPOINT_FILE, weights_only=True)
    cb = torch.load(tmp_path / "b" / CHECKPOINT_FILE, weights_only=True)
    for k in ca["trainer"]:
        assert torch.equal(ca["trainer"][k], cb["trainer"][k]), k
    assert [r["step"] for r in synthaug.Run(tmp_path / "b").log()] == list(range(1, 9))


def test_kill_at_any_moment_leaves_a_loadable_checkpoint(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "synthaug", "fit", "digits", "--out", str(out),
                             "--steps", "100000", "--checkpoint-every", "3", "--batch-size", "16",
                             "--no-progress", *tiny_set_args("dcgan")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while not (out / CHECKPOINT_FILE).exists() and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # let it write a few more checkpoints, then kill it mid-flight
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    sampler = synthaug.load(out)
    assert sampler.sample([0, 9], seed=0).shape == (2, 1, 8, 8)
    step = torch.load(out / CHECKPOINT_FILE, weights_only=True)["step"]
    assert step >= 3
    run = synthaug.fit("digits", out=out, resume=True, steps=step + 3, progress=False)
    assert run.card.training["steps"] == step + 3
    assert [r["step"] for r in run.log()] == list(range(1, step + 4))
    assert not [p for p in os.listdir(out) if p.endswith(".tmp")], "stale temp files left behind"


def _write_folder(root, sizes, mode="RGB", classes=("cat", "dog")):
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i, (w, h) in enumerate(sizes):
            arr = rng.integers(0, 256, (h, w, 3) if mode == "RGB" else (h, w), dtype=np.uint8)
            Image.fromarray(arr).save(root / c / f"{i}.{'png' if i % 2 else 'jpg'}")
    return root


def test_fit_image_folder_of_mixed_sizes_rgb(tmp_path):
    data = _write_folder(tmp_path / "data", [(20, 30), (40, 40), (17, 12), (64, 48)])
    run = synthaug.fit(data, out=tmp_path / "run", config=TINY_CFG, steps=2, batch_size=4,
                       image_size=16, progress=False)
    card = run.card
    assert card.image_shape == [3, 16, 16] and card.class_names == ["cat", "dog"]
    assert card.dataset["class_counts"] == [4, 4]
    assert run.sampler().sample([0, 1], seed=0).shape == (2, 3, 16, 16)


def test_fit_greyscale_folder_detected_and_channels_forced(tmp_path):
    data = _write_folder(tmp_path / "data", [(8, 8)] * 3, mode="L")
    grey = synthaug.fit(data, out=tmp_path / "g", config=TINY_CFG, steps=1, batch_size=4, progress=False)
    assert grey.card.image_shape == [1, 8, 8]
    rgb = synthaug.fit(data, out=tmp_path / "c", config=TINY_CFG, steps=1, batch_size=4, channels=3,
                       progress=False)
    assert rgb.card.image_shape == [3, 8, 8]


def test_fit_npz_native_size_rounds_up_to_a_supported_one(tmp_path):
    path = write_npz(tmp_path / "d.npz", size=12, channels=3)
    run = synthaug.fit(path, out=tmp_path / "run", config=TINY_CFG, steps=1, batch_size=8, progress=False)
    assert run.card.image_shape == [3, 16, 16]
    assert run.card.class_names == ["0", "1", "2"]


def test_fit_torch_dataset_with_class_names(tmp_path):
    class Tiny(torch.utils.data.Dataset):
        classes = ["zero", "one"]

        def __len__(self):
            return 10

        def __getitem__(self, i):
            return torch.full((1, 8, 8), i / 10), torch.tensor(i % 2)

    run = synthaug.fit(Tiny(), out=tmp_path / "run", config=TINY_CFG, steps=1, batch_size=4, progress=False)
    assert run.card.class_names == ["zero", "one"] and run.card.image_shape == [1, 8, 8]


def test_epochs_count_whole_passes_and_resume_extends(tmp_path):
    run = synthaug.fit("digits", out=tmp_path / "run", config=TINY_CFG, epochs=1, batch_size=600,
                       progress=False)
    assert run.card.training["steps"] == 1797 // 600
    run = synthaug.fit("digits", out=tmp_path / "run", resume=True, epochs=2, progress=False)
    assert run.card.training["steps"] == 2 * (1797 // 600)


def test_resume_refuses_different_data(tmp_path):
    synthaug.fit("digits", out=tmp_path / "run", config=TINY_CFG, steps=1, progress=False)
    with pytest.raises(synthaug.SynthaugError, match="different data"):
        synthaug.fit("digits:train", out=tmp_path / "run", resume=True, steps=2, progress=False)


def test_progress_bar_on_stderr_json_on_stdout(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "synthaug", "fit", "digits", "--out", str(tmp_path / "r"),
                           "--steps", "3", *tiny_set_args("dcgan")], capture_output=True, text=True, check=True)
    assert "fit dcgan" in proc.stderr and "3/3" in proc.stderr
    import json

    summary = json.loads(proc.stdout)
    assert summary["steps"] == 3 and summary["peak_rss_mb"] > 0


def test_log_csv_is_well_formed(digits_run):
    with open(digits_run.path / "log.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6 and all(np.isfinite(float(r["loss_d"])) for r in rows)


def test_holdout_keeps_a_stratified_part_of_every_class_out_of_training(tmp_path):
    from synthaug.train.loop import holdout_split

    labels = synthaug.load_data("digits").labels
    train, test = holdout_split(labels, 0.2, seed=0)
    assert len(set(train.tolist()) & set(test.tolist())) == 0 and len(train) + len(test) == len(labels)
    per_class = torch.bincount(labels[test], minlength=10)
    assert ((per_class - 0.2 * torch.bincount(labels)).abs() <= 1).all()
    run = synthaug.fit("digits", out=tmp_path / "run", config=TINY_CFG, steps=1, holdout=0.2, progress=False)
    assert run.card.training["holdout_size"] == len(test) and run.card.training["train_size"] == len(train)
    with pytest.raises(synthaug.SynthaugError, match="holdout must be a fraction"):
        synthaug.fit("digits", out=tmp_path / "x", holdout=1.5)


@pytest.mark.parametrize("class_sizes, fraction, held_out", [
    pytest.param([1, 1], 0.1, [0, 0], id="every-class-one-image"),
    pytest.param([40, 1], 0.1, [4, 0], id="40-and-1"),
    pytest.param([2, 3], 0.5, [1, 2], id="halves-keep-one"),
    pytest.param([5, 5], 0.99, [4, 4], id="almost-all"),
    pytest.param([10, 20], 0.2, [2, 4], id="ordinary"),
])
def test_stratified_split_never_holds_out_a_class_last_image(class_sizes, fraction, held_out):
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(class_sizes)])
    rest, part = stratified_split(labels, fraction, seed=0)
    assert torch.bincount(labels[part], minlength=len(class_sizes)).tolist() == held_out
    assert torch.bincount(labels[rest], minlength=len(class_sizes)).tolist() == \
        [n - h for n, h in zip(class_sizes, held_out)]
    assert sorted(rest.tolist() + part.tolist()) == list(range(len(labels)))
    assert synthaug.data.held_out_counts(labels, part, len(class_sizes)) == held_out


@pytest.mark.parametrize("class_sizes, train_size, holdout_size", [
    pytest.param([1, 1], 2, 0, id="one-image-per-class"),
    pytest.param([40, 1], 37, 4, id="40-and-1"),
])
def test_pixelrnn_fit_keeps_every_class_in_training(tmp_path, class_sizes, train_size, holdout_size):
    """pixelrnn holds out 10% by default: a one-image class must stay in training (it used to
    crash with ZeroDivisionError, or vanish from training without a word)."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(len(class_sizes)), class_sizes)
    path = tmp_path / "d.npz"
    np.savez(path, images=rng.integers(0, 256, (len(labels), 8, 8), dtype=np.uint8), labels=labels)
    run = synthaug.fit(path, out=tmp_path / "run", model="pixelrnn", steps=2, config=TINY["pixelrnn"]["config"],
                       progress=False)
    assert run.card.training["train_size"] == train_size
    assert run.card.training["holdout_size"] == holdout_size
    # The card says how many of each class were held out; a one-image class gives none.
    per_class = run.card.training["holdout_per_class"]
    assert sum(per_class) == holdout_size and len(per_class) == len(class_sizes)
    assert all(held < size or size == held == 0 for held, size in zip(per_class, class_sizes))
    assert per_class[-1] == 0  # the last class has one image
    train, _ = holdout_split(torch.as_tensor(labels), 0.1, seed=run.card.training["seed"])
    assert set(labels[train.numpy()].tolist()) == set(range(len(class_sizes)))
    # A holdout with fewer classes than training is still evaluated; none at all gives no metric.
    if holdout_size:
        assert math.isfinite(run.card.metrics["test_bits_per_dim"])
    else:
        assert "test_bits_per_dim" not in run.card.metrics
    assert run.sampler().sample(list(range(len(class_sizes))), seed=0).shape == (len(class_sizes), 1, 8, 8)
