"""fit on two processes under a real ``torchrun --standalone --nproc_per_node=2`` (gloo): every
family ends with the same weights on both ranks, the ranks draw disjoint shares of each batch,
resume equals an uninterrupted run, and the bad inputs of a multi-process fit are one line."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from synthaug.models import list_models

SCRIPT = Path(__file__).with_name("ddp_fit.py")


def torchrun(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           *args], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    out = root / "report.json"
    proc = torchrun(str(SCRIPT), str(root), str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.parametrize("family", list_models())
def test_two_processes_hold_identical_weights_and_draw_disjoint_batches(report, family):
    found = report[family]
    assert found["world_size"] == 2 and found["steps"] == 4
    r0, r1 = found["ranks"]
    assert (r0["rank"], r1["rank"]) == (0, 1)
    assert r0["state_sha256"] == r1["state_sha256"], "the ranks' weights (or buffers) differ"
    # Global batch 32 over 2 ranks: 16 images a step each, 4 steps in one epoch of digits.
    assert len(r0["epoch_indices"]) == len(r1["epoch_indices"]) == 4 * 16
    assert not set(r0["epoch_indices"]) & set(r1["epoch_indices"]), "an image went to both ranks in one epoch"
    assert found["rng_states_differ"], "both ranks drew the same noise"


@pytest.mark.parametrize("family", list_models())
def test_two_process_resume_equals_uninterrupted(report, family):
    assert report[family]["resume_equal"]


def test_cli_under_torchrun_prints_once_and_refuses_a_different_world_size(tmp_path):
    run = tmp_path / "run"
    proc = torchrun("-m", "synthaug", "fit", "digits", "--out", str(run), "--steps", "2", "--batch-size", "16",
                    "--set", "g_width=8", "--set", "d_width=8", "--no-progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, f"expected one JSON line from rank 0, got {proc.stdout!r}"
    result = json.loads(lines[0])
    assert result["world_size"] == 2 and result["steps"] == 2
    before = sorted(p.name for p in run.iterdir())
    # One process cannot continue a two-process run: it says how to.
    single = subprocess.run([sys.executable, "-m", "synthaug", "fit", "digits", "--out", str(run), "--resume",
                             "--steps", "4"], capture_output=True, text=True, timeout=120)
    assert single.returncode == 2
    assert single.stderr == (f"synthaug fit: error: cannot resume {run}: it was fitted on 2 process(es), got 1: "
                             f"resume it with torchrun --nproc_per_node=2 -m synthaug fit ... --resume, or start "
                             f"again with --force\n")
    assert sorted(p.name for p in run.iterdir()) == before


def test_batch_that_does_not_split_over_the_processes_is_one_line(tmp_path):
    proc = torchrun("-m", "synthaug", "fit", "digits", "--out", str(tmp_path / "run"), "--steps", "2",
                    "--batch-size", "33", "--no-progress", timeout=300)
    assert proc.returncode != 0
    expected = ("synthaug fit: error: --batch-size 33 does not split evenly over 2 processes: expected a multiple "
                "of 2")
    assert expected in proc.stderr.splitlines()
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_device_cuda_without_cuda_is_one_line(tmp_path, capsys):
    from conftest import run_cli

    code, out, err = run_cli(capsys, "fit", "digits", "--out", tmp_path / "run", "--device", "cuda", "--steps", "1")
    assert (code, out) == (2, "")
    assert err == "synthaug fit: error: --device cuda: CUDA is not available on this machine (expected cpu)\n"
    assert not (tmp_path / "run").exists()


def test_quality_metrics_under_torchrun_keep_the_ranks_in_step(tmp_path):
    """Rank 0 alone measures (eval_every); the other rank reads its logs at the same steps (a
    collective), so the run finishes instead of failing on mismatched collectives."""
    run = tmp_path / "run"
    proc = torchrun("-m", "synthaug", "fit", "digits", "--out", str(run), "--steps", "6", "--batch-size", "32",
                    "--eval-every", "2", "--checkpoint-every", "6", "--sample-every", "6",
                    "--set", "g_width=8", "--set", "d_width=8", "--no-progress", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[0])
    assert result["world_size"] == 2 and result["metrics"]["fid"] is not None
    with open(run / "log.csv", newline="") as fh:
        measured = [int(row["step"]) for row in csv.DictReader(fh) if row.get("fid")]
    assert measured == [2, 4, 6]
