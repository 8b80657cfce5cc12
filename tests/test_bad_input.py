"""Bad input gets one clear line, exit code 2, no traceback, and nothing already written is lost.

Every user mistake the CLI can meet should end in exactly one line on stderr,
``synthaug <command>: error: ...``, that names what was expected and what came, with exit code
2. Files that existed before a failed command (a run directory, an exported model) must come
out of it byte for byte unchanged, and no temporary files may be left behind.

The CLI runs in-process (``synthaug.cli.main``) to keep the module fast; two tests run it as a
real process to prove the exit code, the absence of a traceback and the warning on stderr.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import synthaug
from conftest import CARD_KEY, error_line, expect_error, onnx_with_card, run_cli, snapshot, write_png
from synthaug.cli import main

TINY = ["--steps", "2", "--no-progress", "--set", "g_width=8", "--set", "d_width=8", "--batch-size", "8"]
WEIGHTS = "generator.safetensors"
API_ERRORS = (synthaug.SynthaugError, synthaug.CardError)


# --------------------------------------------------------------------------- helpers


def hidden_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


_rng = np.random.default_rng(0)


def image_folder(root: Path, classes=("cat", "dog"), per_class: int = 4) -> Path:
    for name in classes:
        for i in range(per_class):
            write_png(root / name / f"{i}.png")
    return root


def write_npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def good_arrays(n: int = 12, k: int = 2) -> dict[str, np.ndarray]:
    return {"images": _rng.integers(0, 256, (n, 8, 8), dtype=np.uint8), "labels": np.arange(n) % k}


# --------------------------------------------------------------------------- shared fitted run


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> dict[str, Path]:
    """One tiny dcgan run on digits, and its ONNX export: fitted once for the whole module."""
    root = tmp_path_factory.mktemp("fitted")
    run = root / "run"
    assert main(["fit", "digits", "--out", str(run), *TINY]) == 0
    onnx_path = root / "model.onnx"
    assert main(["export", str(run), "--out", str(onnx_path)]) == 0
    return {"run": run, "weights": run / WEIGHTS, "onnx": onnx_path}


@pytest.fixture
def run_copy(fitted, tmp_path) -> Path:
    """A private copy of the fitted run that a test may try to clobber."""
    return Path(shutil.copytree(fitted["run"], tmp_path / "run"))


# --------------------------------------------------------------------------- 1. DATA path


def test_missing_data_path(capsys, tmp_path):
    missing = tmp_path / "no_such_data"
    expect_error(capsys, "fit", [missing, "--out", tmp_path / "run", *TINY],
                 "no_such_data", "not found", "digits", "image folder", ".npz")


def test_data_file_of_wrong_kind(capsys, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not data")
    expect_error(capsys, "fit", [notes, "--out", tmp_path / "run", *TINY], "notes.txt", ".npz", ".txt")


# --------------------------------------------------------------------------- 2. image folders


def test_empty_image_folder(capsys, tmp_path):
    data = tmp_path / "empty_data"
    data.mkdir()
    expect_error(capsys, "fit", [data, "--out", tmp_path / "run", *TINY], "empty_data", "no class subfolders")


def test_folder_with_one_class(capsys, tmp_path):
    data = image_folder(tmp_path / "data", classes=("onlycat",))
    expect_error(capsys, "fit", [data, "--out", tmp_path / "run", *TINY],
                 "at least 2 classes", "got 1", "onlycat")


def test_class_folder_without_images(capsys, tmp_path):
    data = image_folder(tmp_path / "data")
    (data / "zebra").mkdir()
    expect_error(capsys, "fit", [data, "--out", tmp_path / "run", *TINY], "zebra", "no images")


# --------------------------------------------------------------------------- 3. bad files in a folder


def _corrupt_png(path: Path) -> Path:
    good = write_png(path.with_name("donor.png")).read_bytes()
    path.with_name("donor.png").unlink()
    path.write_bytes(good[:30])
    return path


def test_truncated_png_is_named(capsys, tmp_path):
    data = image_folder(tmp_path / "data")
    _corrupt_png(data / "cat" / "broken.png")
    expect_error(capsys, "fit", [data, "--out", tmp_path / "run", *TINY], "broken.png", "--skip-bad-files")


def test_png_truncated_mid_data_is_named(capsys, tmp_path):
    data = image_folder(tmp_path / "data")
    good = write_png(tmp_path / "donor.png", size=32).read_bytes()
    (data / "dog" / "halfway.png").write_bytes(good[:len(good) // 2])
    expect_error(capsys, "fit", [data, "--out", tmp_path / "run", *TINY], "halfway.png")


def test_non_image_file_is_named(capsys, tmp_path):
    data = image_folder(tmp_path / "data")
    (data / "dog" / "notes.txt").write_text("hello")
    expect_error(capsys, "fit", [data, "--out", tmp_path / "run", *TINY],
                 "notes.txt", "not an image", ".png", "--skip-bad-files")


def test_class_left_empty_by_skipping(capsys, tmp_path):
    data = image_folder(tmp_path / "data", classes=("cat",))
    (data / "dog").mkdir()
    _corrupt_png(data / "dog" / "broken.png")
    expect_error(capsys, "fit", [data, "--out", tmp_path / "run", "--skip-bad-files", *TINY], "dog", "no images")


def test_skip_bad_files_warns_with_count(tmp_path):
    """A real process: the fit succeeds and stderr carries one warning with the count."""
    data = image_folder(tmp_path / "data")
    _corrupt_png(data / "cat" / "broken.png")
    (data / "dog" / "notes.txt").write_text("hello")
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "synthaug", "fit", str(data), "--out", str(out),
                           "--skip-bad-files", *TINY], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1, proc.stderr
    assert "skipped 2 bad file(s)" in warnings[0], warnings[0]
    result = json.loads(proc.stdout)
    assert result["num_classes"] == 2
    assert (out / WEIGHTS).is_file()
    card = synthaug.Run(out).card
    assert card.dataset["size"] == 8  # 4 good images per class, the 2 bad files left out


# --------------------------------------------------------------------------- 4. .npz files


def _npz_cases():
    def drop(key):
        def make():
            arrays = good_arrays()
            del arrays[key]
            return arrays
        return make

    def mismatched():
        arrays = good_arrays(n=12)
        arrays["labels"] = arrays["labels"][:9]
        return arrays

    def out_of_range():
        arrays = good_arrays(n=12)
        arrays["labels"] = np.array([0, 1, 5] * 4)
        return arrays

    def one_class():
        arrays = good_arrays(n=12)
        arrays["labels"] = np.zeros(12, dtype=np.int64)
        return arrays

    def float_images():
        arrays = good_arrays(n=12)
        arrays["images"] = arrays["images"].astype(np.float32) / 255
        return arrays

    def pixel_max_not_scalar():
        return {**good_arrays(), "pixel_max": np.array([16, 255])}

    def pixel_max_zero():
        return {**good_arrays(), "pixel_max": np.array(0)}

    def pixels_above_pixel_max():
        return {**good_arrays(), "pixel_max": np.array(16)}  # random pixels reach 255

    return [
        pytest.param(drop("images"), ("missing images", "'images'"), id="no-images"),
        pytest.param(drop("labels"), ("missing labels", "'labels'"), id="no-labels"),
        pytest.param(mismatched, ("12", "(9,)"), id="length-mismatch"),
        pytest.param(out_of_range, ("0..2", "3 classes", "got 5"), id="label-out-of-range"),
        pytest.param(one_class, ("at least 2 classes", "got 1"), id="one-class"),
        pytest.param(float_images, ("uint8", "float32"), id="images-not-uint8"),
        pytest.param(pixel_max_not_scalar, ("pixel_max",), id="pixel-max-not-scalar"),
        pytest.param(pixel_max_zero, ("pixel_max", "0"), id="pixel-max-zero"),
        pytest.param(pixels_above_pixel_max, ("pixel_max", "16", "255"), id="pixels-above-pixel-max"),
    ]


@pytest.mark.parametrize("make, needles", _npz_cases())
def test_bad_npz(capsys, tmp_path, make, needles):
    path = write_npz(tmp_path / "bad_data.npz", **make())
    expect_error(capsys, "fit", [path, "--out", tmp_path / "run", *TINY], "bad_data.npz", *needles)


def test_unreadable_npz(capsys, tmp_path):
    path = tmp_path / "garbage.npz"
    path.write_bytes(b"this is not a zip archive")
    expect_error(capsys, "fit", [path, "--out", tmp_path / "run", *TINY], "garbage.npz", ".npz")


# --------------------------------------------------------------------------- 5, 6. size and model


def test_unsupported_image_size_lists_valid_sizes(capsys, tmp_path):
    from synthaug.models import get_family

    sizes = get_family("dcgan").generator_cls.image_sizes
    assert 20 not in sizes
    expect_error(capsys, "fit", ["digits", "--out", tmp_path / "run", "--image-size", "20", *TINY],
                 "20", ", ".join(map(str, sizes)))


def test_unknown_model_suggests_the_close_one(capsys, tmp_path):
    line = expect_error(capsys, "fit", ["digits", "--out", tmp_path / "run", "--model", "dcgn", *TINY],
                        "'dcgn'", "did you mean 'dcgan'")
    for name in synthaug.list_models():
        assert name in line
    assert not (tmp_path / "run").exists(), "an unknown model must be refused before the disk is touched"


# --------------------------------------------------------------------------- 7. existing runs


def test_existing_run_is_refused_and_unchanged(capsys, run_copy):
    before = snapshot(run_copy)
    expect_error(capsys, "fit", ["digits", "--out", run_copy, "--seed", "1", *TINY],
                 "run", "already exists", "--resume", "--force")
    assert snapshot(run_copy) == before
    assert (run_copy / WEIGHTS).read_bytes() == before[WEIGHTS]


def test_force_replaces_a_run(capsys, run_copy):
    # A foreign file in the run is refused now (issue 7 item 1: tests/test_audit_rundir.py).
    rc, out, err = run_cli(capsys, "fit", "digits", "--out", run_copy, "--force", "--seed", "1", *TINY)
    assert rc == 0, err
    assert "Traceback" not in err
    assert json.loads(out)["steps"] == 2
    assert synthaug.Run(run_copy).card.training["seed"] == 1


def test_force_refuses_a_directory_that_is_not_a_run(capsys, tmp_path):
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.tex").write_text("years of work")
    (precious / "figs").mkdir()
    (precious / "figs" / "plot.png").write_bytes(b"png bytes")
    before = snapshot(precious)
    expect_error(capsys, "fit", ["digits", "--out", precious, "--force", *TINY], "thesis", "not empty", "--force")
    assert snapshot(precious) == before


@pytest.mark.parametrize("data, extra, needle", [
    pytest.param("no_such_data", [], "no_such_data", id="missing-data"),
    pytest.param("digits", ["--image-size", "20"], "20", id="bad-image-size"),
])
def test_force_with_bad_data_keeps_the_old_run(capsys, run_copy, tmp_path, data, extra, needle):
    """--force must not delete the old run before it knows the new fit can start."""
    before = snapshot(run_copy)
    source = tmp_path / data if data == "no_such_data" else data
    expect_error(capsys, "fit", [source, *extra, "--out", run_copy, "--force", *TINY], needle)
    assert snapshot(run_copy) == before, "a failed --force fit deleted the existing run"


def test_resume_without_checkpoint(capsys, tmp_path):
    empty = tmp_path / "not_a_run"
    empty.mkdir()
    (empty / "readme.txt").write_text("keep me")
    expect_error(capsys, "fit", ["digits", "--out", empty, "--resume", *TINY], "not_a_run", "checkpoint.pt")
    assert (empty / "readme.txt").read_text() == "keep me"


def test_resume_of_nothing(capsys, tmp_path):
    expect_error(capsys, "fit", ["digits", "--out", tmp_path / "ghost", "--resume", *TINY],
                 "ghost", "checkpoint.pt")


def test_resume_and_force_together(capsys, run_copy):
    before = snapshot(run_copy)
    expect_error(capsys, "fit", ["digits", "--out", run_copy, "--resume", "--force", *TINY], "--resume", "--force")
    assert snapshot(run_copy) == before


# --------------------------------------------------------------------------- 8. unwritable outputs


@pytest.fixture
def afile(tmp_path) -> Path:
    path = tmp_path / "afile"
    path.write_text("a plain file")
    return path


def test_fit_out_below_a_file(capsys, afile):
    expect_error(capsys, "fit", ["digits", "--out", afile / "run", *TINY], "afile", "run")
    assert afile.read_text() == "a plain file"


def test_fit_out_is_a_file(capsys, afile):
    expect_error(capsys, "fit", ["digits", "--out", afile, *TINY], "afile", "existing file")
    assert afile.read_text() == "a plain file"


def test_sample_out_below_a_file(capsys, fitted, afile):
    expect_error(capsys, "sample", [fitted["run"], "--per-class", "1", "--out", afile / "grid.png"], "afile")
    assert afile.read_text() == "a plain file"


def test_export_out_below_a_file(capsys, fitted, afile):
    expect_error(capsys, "export", [fitted["run"], "--out", afile / "model.onnx"], "afile")
    assert afile.read_text() == "a plain file"


@pytest.mark.parametrize("name", ["grid.png", "samples.npz"])
def test_sample_out_is_a_directory(capsys, fitted, tmp_path, name):
    target = tmp_path / name
    target.mkdir()
    (target / "keep.txt").write_text("keep")
    expect_error(capsys, "sample", [fitted["run"], "--per-class", "1", "--out", target], name)
    assert (target / "keep.txt").read_text() == "keep"
    assert hidden_files(tmp_path) == [], "temporary files left behind"


def test_export_out_is_a_directory(capsys, fitted, tmp_path):
    target = tmp_path / "model.onnx"
    target.mkdir()
    expect_error(capsys, "export", [fitted["run"], "--out", target], "model.onnx")
    assert target.is_dir()
    assert hidden_files(tmp_path) == [], "temporary files left behind"


# --------------------------------------------------------------------------- 9. tampered and foreign files


def _identity_onnx(dest: Path, card_json: str | None = None) -> Path:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    if card_json is not None:
        helper.set_model_props(model, {CARD_KEY: card_json})
    onnx.checker.check_model(model)
    onnx.save(model, str(dest))
    return dest


def _random_bytes(fitted, d: Path) -> Path:
    path = d / "random_bytes.onnx"
    path.write_bytes(np.random.default_rng(1).bytes(4096))
    return path


def _no_card(fitted, d: Path) -> Path:
    return _identity_onnx(d / "no_card.onnx")


def _future_version(fitted, d: Path) -> Path:
    return onnx_with_card(fitted["onnx"], d / "future.onnx", lambda c: c.update(format_version=999))


def _unknown_family(fitted, d: Path) -> Path:
    return onnx_with_card(fitted["onnx"], d / "alien_family.onnx", lambda c: c.update(family="stylegan9"))


def _safetensors_no_metadata(fitted, d: Path) -> Path:
    import torch
    from safetensors.torch import save_file

    path = d / "plain.safetensors"
    save_file({"weight": torch.zeros(3, 3)}, str(path))
    return path


TAMPERED = [
    pytest.param(_random_bytes, ("random_bytes.onnx",), id="onnx-random-bytes"),
    pytest.param(_no_card, ("no_card.onnx", CARD_KEY), id="onnx-without-card"),
    pytest.param(_future_version, ("future.onnx", "999"), id="onnx-format-999"),
    pytest.param(_unknown_family, ("alien_family.onnx", "stylegan9"), id="onnx-unknown-family"),
    pytest.param(_safetensors_no_metadata, ("plain.safetensors", CARD_KEY), id="safetensors-no-metadata"),
]


@pytest.mark.parametrize("make, needles", TAMPERED)
def test_info_refuses_tampered_file(capsys, fitted, tmp_path, make, needles):
    path = make(fitted, tmp_path)
    before = path.read_bytes()
    expect_error(capsys, "info", [path], *needles)
    expect_error(capsys, "info", [path, "--json"], *needles)
    assert path.read_bytes() == before


@pytest.mark.parametrize("make, needles", TAMPERED)
def test_sample_refuses_tampered_file(capsys, fitted, tmp_path, make, needles):
    path = make(fitted, tmp_path)
    out = tmp_path / "grid.png"
    expect_error(capsys, "sample", [path, "--per-class", "1", "--out", out], *needles)
    assert not out.exists()
    assert hidden_files(tmp_path) == []


@pytest.mark.parametrize("make, needles", TAMPERED)
def test_load_refuses_tampered_file(fitted, tmp_path, make, needles):
    path = make(fitted, tmp_path)
    with pytest.raises(API_ERRORS) as info:
        synthaug.load(path)
    assert isinstance(info.value, ValueError)
    for needle in needles:
        assert needle in str(info.value)
    assert "\n" not in str(info.value)


def _foreign_graph_with_real_card(fitted, d: Path) -> Path:
    """A synthaug card grafted onto a graph that is not a generator."""
    import onnx

    props = {p.key: p.value for p in onnx.load(str(fitted["onnx"])).metadata_props}
    return _identity_onnx(d / "grafted.onnx", props[CARD_KEY])


def _weights_not_matching_card(fitted, d: Path) -> Path:
    """A real card over tensors that are not the generator's."""
    import torch
    from safetensors.torch import save_file

    path = d / "swapped.safetensors"
    meta = {CARD_KEY: synthaug.Run(fitted["run"]).card.to_json()}
    save_file({"weight": torch.zeros(3, 3)}, str(path), metadata=meta)
    return path


GRAFTED = [
    pytest.param(_foreign_graph_with_real_card, ("grafted.onnx",), id="onnx-card-on-foreign-graph"),
    pytest.param(_weights_not_matching_card, ("swapped.safetensors",), id="safetensors-foreign-weights"),
]


@pytest.mark.parametrize("make, needles", GRAFTED)
def test_sample_refuses_grafted_file(capsys, fitted, tmp_path, make, needles):
    path = make(fitted, tmp_path)
    out = tmp_path / "grid.png"
    expect_error(capsys, "sample", [path, "--per-class", "1", "--out", out], *needles)
    assert not out.exists()


@pytest.mark.parametrize("make, needles", GRAFTED)
def test_load_or_sample_refuses_grafted_file(fitted, tmp_path, make, needles):
    path = make(fitted, tmp_path)
    with pytest.raises(API_ERRORS) as info:
        synthaug.load(path).sample([0, 1], seed=0)
    for needle in needles:
        assert needle in str(info.value)


# --------------------------------------------------------------------------- 10. sample and --set values


def test_sample_class_out_of_range(capsys, fitted, tmp_path):
    out = tmp_path / "grid.png"
    expect_error(capsys, "sample", [fitted["run"], "--per-class", "1", "--classes", "12", "--out", out],
                 "--classes", "0..9", "'12'")
    assert not out.exists()


def test_sample_wrong_suffix(capsys, fitted, tmp_path):
    out = tmp_path / "x.txt"
    expect_error(capsys, "sample", [fitted["run"], "--per-class", "1", "--out", out], "x.txt", ".png", ".npz")
    assert not out.exists()


def test_sample_keeps_existing_output_on_error(capsys, fitted, tmp_path):
    out = tmp_path / "grid.png"
    assert main(["sample", str(fitted["run"]), "--per-class", "1", "--out", str(out)]) == 0
    before = out.read_bytes()  # an earlier grid of synthaug's: only such a file may be replaced, with --force
    expect_error(capsys, "sample", [fitted["run"], "--per-class", "1", "--classes", "nope", "--out", out,
                                    "--force"], "'nope'")
    assert out.read_bytes() == before


@pytest.mark.parametrize("sets, needles", [
    pytest.param(["latent_dim=0"], ("latent_dim", "[1, 4096]", "got 0"), id="latent-dim-zero"),
    pytest.param(["nope=1"], ("'nope'", "latent_dim", "g_width", "ema_decay"), id="unknown-parameter"),
    pytest.param(["latent_dim=0", "nope=1", "loss=wasserstein"],
                 ("latent_dim", "got 0", "'nope'", "loss", "hinge", "'wasserstein'"), id="all-reported-at-once"),
    pytest.param(["betas=0.5"], ("betas", "0.5"), id="betas-not-a-pair"),
    pytest.param(["betas=[0.5]"], ("betas", "[0.5]"), id="betas-too-short"),
    pytest.param(["latent_dim"], ("KEY=VALUE", "'latent_dim'"), id="no-equals-sign"),
])
def test_bad_set_values(capsys, tmp_path, sets, needles):
    out = tmp_path / "run"
    argv = ["digits", "--out", out, *TINY]
    for item in sets:
        argv += ["--set", item]
    expect_error(capsys, "fit", argv, *needles)
    assert not out.exists(), "bad hyper-parameters must be refused before the disk is touched"


@pytest.mark.parametrize("flag, value", [("--steps", "0"), ("--batch-size", "-3"), ("--checkpoint-every", "0")])
def test_non_positive_lengths(capsys, tmp_path, flag, value):
    argv = ["digits", "--out", tmp_path / "run", *TINY, flag, value]
    expect_error(capsys, "fit", argv, flag.lstrip("-").replace("-", "_"), value)


def test_unknown_device(capsys, tmp_path):
    expect_error(capsys, "fit", ["digits", "--out", tmp_path / "run", "--device", "warpdrive", *TINY], "warpdrive")


def test_argparse_errors_exit_2_without_traceback(capsys):
    rc, out, err = run_cli(capsys, "fit", "digits", "--steps", "many")
    assert rc == 2
    assert "Traceback" not in err
    assert "synthaug fit: error:" in err


# --------------------------------------------------------------------------- 11. atomic export


def test_failed_export_keeps_previous_model(capsys, fitted, tmp_path):
    target = tmp_path / "model.onnx"
    shutil.copyfile(fitted["onnx"], target)
    before = target.read_bytes()
    expect_error(capsys, "export", [fitted["run"], "--out", target, "--tolerance", "-1", "--force"],
                 "parity", "-1")
    assert target.read_bytes() == before
    assert hidden_files(tmp_path) == [], "temporary files left behind"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_export_wrong_suffix(capsys, fitted, tmp_path):
    expect_error(capsys, "export", [fitted["run"], "--out", tmp_path / "model.onx"], "model.onx", ".onnx")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- a real process


@pytest.mark.parametrize("argv, needle", [
    pytest.param(["fit", "{tmp}/missing_dir", "--out", "{tmp}/run", *TINY], "missing_dir", id="fit-missing-data"),
    pytest.param(["info", "{tmp}/random.onnx"], "random.onnx", id="info-random-bytes"),
])
def test_real_process_exits_2_without_traceback(tmp_path, argv, needle):
    (tmp_path / "random.onnx").write_bytes(np.random.default_rng(2).bytes(1024))
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    proc = subprocess.run([sys.executable, "-m", "synthaug", *argv], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    error_line(proc.stderr, argv[0], needle)
