"""Run directories and output files: nothing lost, one writer, clear refusals.

``fit --force`` replaces only what synthaug wrote and swaps the new run in atomically; ``--resume``
refuses what contradicts the checkpoint; a second fit into a busy run names the holder; ``sample``
and ``export`` refuse to overwrite what they did not write; symlinked and nested ``--out`` paths
are handled; writes are atomic and follow the umask. The CLI runs in-process except where a
second real process is the point (the lock).
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import synthaug
from conftest import error_line, expect_error, run_cli, snapshot, tiny_set_args, write_npz
from synthaug.atomic import atomic_write, atomic_write_text
from synthaug.cli import main
from synthaug.grid import save_grid
from synthaug.layout import CARD_FILE, CHECKPOINT_FILE, WEIGHTS_FILE

TINY = ["--steps", "2", "--no-progress", "--set", "g_width=8", "--set", "d_width=8", "--batch-size", "8"]
TINY_CFG = {"g_width": 8, "d_width": 8}
LOCK_FILE = ".synthaug.lock"  # synthaug.layout.LOCK_FILE, spelled out so this module loads on older code


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> Path:
    """One tiny dcgan run on digits (2 steps, batch 8, seed 0), fitted once for the module."""
    run = tmp_path_factory.mktemp("fitted") / "run"
    assert main(["fit", "digits", "--out", str(run), *TINY]) == 0
    return run


@pytest.fixture
def run_copy(fitted, tmp_path) -> Path:
    return Path(shutil.copytree(fitted, tmp_path / "run"))


def hidden_siblings(path: Path) -> list[str]:
    """Hidden entries beside ``path``: temp or staging directories a fit may have left."""
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith("."))


def seed_of(run: Path) -> int:
    return synthaug.Run(run).card.training["seed"]


# --------------------------------------------------------------------------- --force and foreign files


def _user_project(tmp_path: Path) -> Path:
    """A user's project folder that happens to hold a card.json (not a synthaug card) and sources."""
    proj = tmp_path / "proj"
    (proj / "src").mkdir(parents=True)
    (proj / "src" / "thesis.tex").write_text("keep")
    (proj / CARD_FILE).write_text("{}")
    return proj


def _run_with(name: str, make):
    def build(tmp_path: Path, fitted: Path) -> Path:
        run = Path(shutil.copytree(fitted, tmp_path / "run"))
        make(run / name, run)
        return run
    return build


def _sample_npz(path: Path, run: Path) -> None:
    # Written by synthaug itself, at the user's request: still the user's file, not fit's.
    assert main(["sample", str(run), "--per-class", "1", "--out", str(path)]) == 0


@pytest.mark.parametrize("make, foreign", [
    (lambda tmp, fitted: _user_project(tmp), ["card.json (not a synthaug card)", "src/"]),
    (_run_with("notes.txt", lambda p, run: p.write_text("mine")), ["notes.txt"]),
    (_run_with("samples.npz", _sample_npz), ["samples.npz"]),
    (_run_with("model.onnx", lambda p, run: p.write_bytes(b"onnx bytes")), ["model.onnx"]),
    (_run_with("sub", lambda p, run: (p.mkdir(), (p / "x.png").write_bytes(b"x"))), ["sub/"]),
    (_run_with("link", lambda p, run: p.symlink_to(run.parent)), ["link (a link)"]),
], ids=["user-project", "user-file", "sample-npz", "onnx", "subfolder", "symlink"])
def test_force_refuses_a_directory_holding_foreign_files(capsys, tmp_path, fitted, make, foreign):
    target = make(tmp_path, fitted)
    before = snapshot(target)
    expect_error(capsys, "fit", ["digits", "--out", target, "--force", *TINY],
                 str(target), "not empty", "did not write", "--force", *foreign)
    assert snapshot(target) == before, "--force touched a directory holding foreign files"
    assert hidden_siblings(target) == []


# --------------------------------------------------------------------------- data inside --out


def _data_in_run(run: Path, tmp_path: Path) -> Path:
    return write_npz(run / "data.npz", n=24, classes=3)


def _data_linked_into_run(run: Path, tmp_path: Path) -> Path:
    real = write_npz(run / "data.npz", n=24, classes=3)
    link = tmp_path / "elsewhere.npz"
    link.symlink_to(real)
    return link


def _data_is_run(run: Path, tmp_path: Path) -> Path:
    return run


@pytest.mark.parametrize("make_data", [_data_in_run, _data_linked_into_run, _data_is_run],
                         ids=["inside", "symlink-into", "same-dir"])
def test_data_inside_the_run_directory_is_refused(capsys, run_copy, tmp_path, make_data):
    data = make_data(run_copy, tmp_path)
    before = snapshot(run_copy)
    expect_error(capsys, "fit", [data, "--out", run_copy, "--force", *TINY], "inside the run directory",
                 str(run_copy))
    assert snapshot(run_copy) == before


# --------------------------------------------------------------------------- an interrupted --force fit


def test_interrupted_force_fit_keeps_the_old_run(capsys, run_copy, monkeypatch):
    callbacks = importlib.import_module("synthaug.train.callbacks")

    before = snapshot(run_copy)
    grids: list[Path] = []
    real_write_grid = callbacks.SampleGrids.write

    def write_grid_then_ctrl_c(grids_callback, loop):
        real_write_grid(grids_callback, loop)  # the new run has started writing: now the user presses Ctrl-C
        grids.extend(loop.out.glob("samples_*.png"))
        raise KeyboardInterrupt

    monkeypatch.setattr(callbacks.SampleGrids, "write", write_grid_then_ctrl_c)
    rc, _, err = run_cli(capsys, "fit", "digits", "--out", run_copy, "--force", "--seed", "1", *TINY,
                         "--sample-every", "1")
    assert rc == 130, err
    assert grids and grids[0].parent != run_copy, "the new run must be written beside the old one"
    assert snapshot(run_copy) == before, "an interrupted --force fit changed the old run"
    assert hidden_siblings(run_copy) == [], "the interrupted fit left its temp directory behind"
    monkeypatch.undo()
    # Uninterrupted, the same command swaps the new run in and leaves nothing beside it.
    rc, _, err = run_cli(capsys, "fit", "digits", "--out", run_copy, "--force", "--seed", "1", *TINY)
    assert rc == 0, err
    assert seed_of(run_copy) == 1 and hidden_siblings(run_copy) == []
    assert not (run_copy / LOCK_FILE).exists()


# --------------------------------------------------------------------------- one writer per run directory


def test_second_fit_into_a_busy_run_names_the_holder(capsys, tmp_path):
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "synthaug", "fit", "digits", "--out", str(out),
                              "--steps", "1000000", "--checkpoint-every", "2", "--sample-every", "1000000",
                              "--batch-size", "16", "--no-progress", *tiny_set_args("dcgan")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while not (out / CHECKPOINT_FILE).exists() and first.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert (out / CHECKPOINT_FILE).exists(), "the first fit did not start"
        for extra in ([], ["--force"], ["--resume"]):
            rc, stdout, err = run_cli(capsys, "fit", "digits", "--out", out, *extra, "--steps", "3", "--no-progress")
            assert rc == 2, (extra, err)
            error_line(err, "fit", str(out), "in use", f"pid {first.pid}")
        assert first.poll() is None, "the first fit must keep running"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # A killed holder's lock file blocks nobody: the kernel dropped the lock with the process.
    step = torch.load(out / CHECKPOINT_FILE, weights_only=True)["step"]
    rc, _, err = run_cli(capsys, "fit", "digits", "--out", out, "--resume", "--steps", step + 1, "--no-progress")
    assert rc == 0, err
    assert not (out / LOCK_FILE).exists(), "the lock file outlived the fit that held it"


# --------------------------------------------------------------------------- sample and export outputs


def _user_npz(tmp_path: Path) -> Path:
    return write_npz(tmp_path / "train.npz")


def _user_png(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    Image.new("RGB", (4, 4)).save(path)
    return path


def _user_onnx(tmp_path: Path) -> Path:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"someone else's model")
    return path


@pytest.mark.parametrize("command, make, force, needles", [
    ("sample", _user_npz, False, ["already exists", "--force"]),
    ("sample", _user_npz, True, ["not written by synthaug", "even with --force"]),
    ("sample", _user_png, False, ["already exists", "--force"]),
    ("sample", _user_png, True, ["not written by synthaug", "even with --force"]),
    ("export", _user_onnx, False, ["already exists", "--force"]),
    ("export", _user_onnx, True, ["not written by synthaug", "even with --force"]),
], ids=["npz", "npz-force", "png", "png-force", "onnx", "onnx-force"])
def test_existing_sample_or_export_output_is_refused(capsys, fitted, tmp_path, command, make, force, needles):
    target = make(tmp_path)
    before = target.read_bytes()
    args = [fitted, "--out", target, *(["--force"] if force else [])]
    if command == "sample":
        args += ["--per-class", "1"]
    expect_error(capsys, command, args, target.name, *needles)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize("name", ["again.npz", "again.png"])
def test_force_replaces_what_sample_wrote(capsys, fitted, tmp_path, name):
    target = tmp_path / name
    rc, _, err = run_cli(capsys, "sample", fitted, "--per-class", "1", "--out", target, "--seed", "1")
    assert rc == 0, err
    first = target.read_bytes()
    expect_error(capsys, "sample", [fitted, "--per-class", "1", "--out", target, "--seed", "2"], "already exists")
    rc, _, err = run_cli(capsys, "sample", fitted, "--per-class", "1", "--out", target, "--seed", "2", "--force")
    assert rc == 0, err
    assert target.read_bytes() != first
    if target.suffix == ".npz":
        with np.load(target) as npz:  # the mark is the card, and the file stays valid fit input
            assert synthaug.GeneratorCard.from_json(str(npz["synthaug_card"])) == synthaug.Run(fitted).card
            assert npz["images"].shape == (10, 8, 8)


# --------------------------------------------------------------------------- no paths in the card


def test_card_dataset_name_is_the_base_name(tmp_path):
    (tmp_path / "home_of_ann").mkdir()
    for data, expected in [(write_npz((tmp_path / "home_of_ann" / "mydata.npz").absolute(), n=12), "mydata.npz"),
                           ("digits:train", "digits:train")]:  # a built-in name stays as it is
        out = tmp_path / f"run_{expected}"
        run = synthaug.fit(data, out=out, config=TINY_CFG, steps=1, batch_size=4, progress=False)
        assert run.card.dataset["name"] == expected
        assert str(tmp_path) not in (out / CARD_FILE).read_text()
        assert str(tmp_path) not in json.dumps(synthaug.Run(out).card.to_dict())


# --------------------------------------------------------------------------- killed before a checkpoint


def _killed_before_first_checkpoint(tmp_path: Path) -> Path:
    """What a fit killed after its first grid but before its first checkpoint left behind."""
    run = tmp_path / "run"
    run.mkdir()
    save_grid(torch.rand(4, 1, 8, 8), 2, run / "samples_000001.png")
    (run / ".checkpoint.pt.abcd1234.tmp").write_bytes(b"half a checkpoint")
    (run / LOCK_FILE).write_text("12345\n")  # its lock file; the lock itself died with it
    stale = tmp_path / ".run.synthaug-new-deadbeef"  # a killed --force fit's staging directory
    stale.mkdir()
    save_grid(torch.rand(4, 1, 8, 8), 2, stale / "samples_000001.png")
    return run


def test_run_killed_before_first_checkpoint_is_refused_by_resume_and_replaced_by_force(capsys, tmp_path):
    run = _killed_before_first_checkpoint(tmp_path)
    before = snapshot(run)
    expect_error(capsys, "fit", ["digits", "--out", run, "--resume", *TINY],
                 str(run), "nothing to resume", "checkpoint.pt", "--force")
    assert snapshot(run) == before
    rc, _, err = run_cli(capsys, "fit", "digits", "--out", run, "--force", *TINY)
    assert rc == 0, err
    assert sorted(p.name for p in run.iterdir()) == sorted(
        [CARD_FILE, WEIGHTS_FILE, CHECKPOINT_FILE, "log.csv", "samples_000002.png"])
    assert hidden_siblings(run) == [], "stale staging directory or temp files left behind"


# --------------------------------------------------------------------------- disk full


def test_disk_full_while_writing_a_checkpoint_keeps_the_old_one(capsys, run_copy, monkeypatch):
    old_checkpoint = (run_copy / CHECKPOINT_FILE).read_bytes()

    def save_until_the_disk_is_full(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"PK\x03\x04 a few bytes")  # torch.save got this far
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")

    monkeypatch.setattr(torch, "save", save_until_the_disk_is_full)
    expect_error(capsys, "fit", ["digits", "--out", run_copy, "--resume", "--steps", "3", "--no-progress"],
                 "cannot write", CHECKPOINT_FILE, "disk full")
    assert (run_copy / CHECKPOINT_FILE).read_bytes() == old_checkpoint
    assert [p.name for p in run_copy.iterdir() if p.name.startswith(".")] == []


# --------------------------------------------------------------------------- symlinked --out, odd checkpoints


def test_force_through_a_symlinked_out_keeps_the_link(capsys, run_copy, tmp_path):
    link = tmp_path / "latest"
    link.symlink_to(run_copy, target_is_directory=True)
    rc, out, err = run_cli(capsys, "fit", "digits", "--out", link, "--force", "--seed", "1", *TINY)
    assert rc == 0, err
    assert json.loads(out)["run"] == str(link)
    assert link.is_symlink() and link.resolve() == run_copy.resolve(), "the link must still lead to the run"
    assert seed_of(run_copy) == 1
    assert hidden_siblings(run_copy) == [] and hidden_siblings(link) == []


def test_symlinked_out_with_foreign_files_is_refused(capsys, run_copy, tmp_path):
    (run_copy / "notes.txt").write_text("mine")
    link = tmp_path / "latest"
    link.symlink_to(run_copy, target_is_directory=True)
    before = snapshot(run_copy)
    expect_error(capsys, "fit", ["digits", "--out", link, "--force", *TINY], "notes.txt", "--force")
    assert snapshot(run_copy) == before and link.is_symlink()


def test_dangling_symlink_out_is_refused(capsys, tmp_path):
    link = tmp_path / "latest"
    link.symlink_to(tmp_path / "gone")
    expect_error(capsys, "fit", ["digits", "--out", link, "--force", *TINY], "latest", "does not exist")
    assert link.is_symlink() and not (tmp_path / "gone").exists()


def test_resume_refuses_a_checkpoint_with_an_unexpected_settings_key(capsys, run_copy):
    path = run_copy / CHECKPOINT_FILE
    state = torch.load(path, weights_only=True)
    state["settings"]["warp_drive"] = True
    torch.save(state, path)
    before = snapshot(run_copy)
    expect_error(capsys, "fit", ["digits", "--out", run_copy, "--resume", "--steps", "3", "--no-progress"],
                 CHECKPOINT_FILE, "'warp_drive'", "--force")
    assert snapshot(run_copy) == before


# --------------------------------------------------------------------------- --out inside the image folder


def _image_folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    return root


@pytest.mark.parametrize("via_link", [False, True], ids=["direct", "symlinked-parent"])
def test_out_inside_the_image_folder_is_refused(capsys, tmp_path, via_link):
    data = _image_folder(tmp_path / "data")
    parent = data
    if via_link:
        parent = tmp_path / "runs"
        parent.symlink_to(data, target_is_directory=True)
    before = snapshot(data)
    expect_error(capsys, "fit", [data, "--out", parent / "run1", *TINY], "inside the image folder", "class")
    assert snapshot(data) == before and not (data / "run1").exists()


# --------------------------------------------------------------------------- --resume against the checkpoint


@pytest.mark.parametrize("option", [
    ["--model", "vae"], ["--batch-size", "32"], ["--seed", "3"], ["--set", "g_width=16"],
    ["--image-size", "16"], ["--channels", "3"], ["--holdout", "0.5"],
], ids=lambda o: o[0].lstrip("-"))
def test_resume_refuses_options_that_contradict_the_checkpoint(capsys, fitted, option):
    before = snapshot(fitted)
    line = expect_error(capsys, "fit", ["digits", "--out", fitted, "--resume", "--steps", "3", "--no-progress",
                                        *option], "cannot resume", "checkpoint", option[0])
    assert option[1].split("=")[-1] in line
    assert snapshot(fitted) == before


def test_resume_accepts_options_equal_to_the_checkpoint_and_the_api_refuses_too(capsys, run_copy):
    with pytest.raises(synthaug.SynthaugError, match=r"seed=3 \(checkpoint: 0\)"):
        synthaug.fit("digits", out=run_copy, resume=True, steps=3, seed=3, progress=False)
    rc, _, err = run_cli(capsys, "fit", "digits", "--out", run_copy, "--resume", "--steps", "3", "--no-progress",
                         "--model", "dcgan", "--seed", "0", "--batch-size", "8", "--set", "g_width=8",
                         "--image-size", "8", "--channels", "1")
    assert rc == 0, err
    assert synthaug.Run(run_copy).card.training["steps"] == 3


# --------------------------------------------------------------------------- umask


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002], ids=oct)
def test_atomic_writes_apply_the_umask(tmp_path, umask):
    from safetensors.torch import save_file

    old = os.umask(umask)
    try:
        text = atomic_write_text(tmp_path / "card.json", "{}")
        # safetensors replaces the file it is given with one of mode 0600: the mode must still follow the umask
        weights = atomic_write(tmp_path / "w.safetensors", lambda p: save_file({"a": torch.zeros(2)}, str(p)))
    finally:
        os.umask(old)
    for path in (text, weights):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path.name
