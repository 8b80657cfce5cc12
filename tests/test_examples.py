"""Every example script runs (shortened) and does what it says."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from PIL import Image

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SHORT_AUGMENT = ["--gen-steps", "4", "--gen-width", "8", "--clf-steps", "12"]


def run_example(name: str, *args: str, cwd: Path | None = None) -> dict:
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_quickstart(tmp_path):
    out = run_example("quickstart.py", "--out", str(tmp_path / "run"), "--steps", "3", "--width", "8")
    assert out["onnx_parity"] <= 1e-4 and out["torch_vs_onnx_same_seed"] <= 1e-4
    assert Path(out["grid"]).is_file() and Path(out["model"]).is_file()
    assert not (tmp_path / "run" / "model.onnx").exists()  # beside the run, so --force can replace it
    again = run_example("quickstart.py", "--out", str(tmp_path / "run"), "--steps", "3", "--width", "8")
    assert again["run"] == out["run"]  # a second run replaces the first (force=True)


def test_wrap_dataset():
    out = run_example("wrap_dataset.py", *SHORT_AUGMENT, "--ratio", "2.0")
    assert out["real_images"] == 136 and out["synthetic_images"] == 272
    assert 0 < out["real_only_accuracy"] <= 1 and 0 < out["with_synthetic_accuracy"] <= 1


def test_batch_mix():
    out = run_example("batch_mix.py", *SHORT_AUGMENT, "--mode", "replace", "--p", "0.5")
    assert out["mode"] == "replace" and 0 < out["with_mix_accuracy"] <= 1 and 0 < out["real_only_accuracy"] <= 1


def test_albumentations_pipeline(tmp_path):
    out = run_example("albumentations_pipeline.py", "--run", str(tmp_path / "run"), "--steps", "2",
                      "--out", str(tmp_path / "p.png"), "--p", "1.0")
    assert out["output_dtype"] == "float32" and 0.0 <= out["output_range"][0] and out["output_range"][1] <= 1.0
    assert Image.open(tmp_path / "p.png").size[0] > Image.open(tmp_path / "p.png").size[1]  # 2 rows of 20


# The recipe examples fit on first use: the fastest family, a few steps, a cache of their own.
SHORT_RECIPE = ["--model", "gan", "--gen-steps", "20", "--clf-steps", "12"]


def test_few_labels(tmp_path):
    from synthaug.data.allocation import DEFAULT_RATIO

    out = run_example("few_labels.py", "--per-class", "3", *SHORT_RECIPE, "--cache-dir", str(tmp_path))
    assert out["labelled_images"] == 30 and out["unlabelled_images"] == 1347 - 30
    # the recipe's own check decides: the default dose where it helped on validation splits, else none
    assert out["synthetic_images"] == (round(DEFAULT_RATIO * 30) if out["dose_check"]["used"] else 0)
    assert isinstance(out["dose_check"]["gain"], float)
    assert 0 < out["real_only_accuracy"] <= 1 and 0 < out["with_synthetic_accuracy"] <= 1
    cards = list(tmp_path.glob("fits/*/card.json"))
    assert len(cards) == 1  # fitted once, into the cache it was given
    card = json.loads(cards[0].read_text())
    assert card["dataset"]["unlabeled_size"] == 1347 - 30 and card["training"]["steps"] == 20
    assert card["training"]["pseudo_labels"]["pool"] == 1347 - 30
    again = run_example("few_labels.py", "--per-class", "3", *SHORT_RECIPE, "--cache-dir", str(tmp_path))
    assert again == out and list(tmp_path.glob("fits/*/card.json")) == cards  # reused: same numbers, no new fit


def test_long_tail(tmp_path):
    out = run_example("long_tail.py", "--rare", "8,9", "--keep", "0.1", *SHORT_RECIPE, "--cache-dir", str(tmp_path))
    counts, added = out["class_counts"], out["synthetic_per_class"]
    assert counts[8] == 13 and counts[9] == 14 and counts[:8] == [133, 136, 133, 137, 136, 136, 136, 134]
    repeated, fill = out["repeated_per_class"], out["dose_check"]["fill"]
    if out["dose_check"]["used"]:  # every class topped up to the largest
        assert fill == "synthetic" and [c + a for c, a in zip(counts, added)] == [max(counts)] * 10
        assert repeated == [0] * 10
    elif fill == "real":  # its check found class-balanced resampling better: repeated real images instead
        assert added == [0] * 10 and [c + r for c, r in zip(counts, repeated)] == [max(counts)] * 10
    else:  # neither helped on validation splits: the real images alone
        assert fill == "none" and added == [0] * 10 and repeated == [0] * 10
    for arm in ("real_only", "balanced"):
        assert all(0 <= out[arm][k] <= 1 for k in ("accuracy", "balanced_accuracy", "rare_accuracy"))


def test_every_example_has_a_test():
    tested = {"quickstart.py", "wrap_dataset.py", "batch_mix.py", "albumentations_pipeline.py", "few_labels.py",
              "long_tail.py"}
    assert {p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")} == tested
