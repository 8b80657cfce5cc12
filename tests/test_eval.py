"""``synthaug eval`` / ``synthaug.evaluation``: the metrics measure what they claim, the gain is
paired, the advice is honest, the report is self-contained, and bad input gets one line.

Quality metrics are checked in pixel space on the real digits (64 dimensions at 8x8), where
the truth is known: disjoint real splits are alike, blurred-and-noised images are not. Fake
samplers (real images, noise, label-ignoring) stand in for generators whose behaviour is known.
"""

from __future__ import annotations

import base64
import io
import json
import re
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

import synthaug
from synthaug.card import GeneratorCard
from synthaug.data import load_data, stratified_split
from synthaug.errors import SynthaugError
from synthaug.evaluation import evaluate, fid, kid, precision_recall_density_coverage
from synthaug.metrics.views import ClassicalAugment
from synthaug.evaluation.gain import downstream_gain, paired_gain, summarise_fraction, train_arm
from synthaug.evaluation.memorisation import memorisation
from synthaug.evaluation.recommendation import DID_NOT_HELP, recommend
from synthaug.metrics.specs import classifier_factory
from synthaug.metrics import SmallCNN, SmallResNet, classification_accuracy_score, fit_steps, predict
from conftest import expect_error, run_cli, snapshot

DIGITS_NAMES = [str(i) for i in range(10)]
#: Small budgets for the end-to-end runs: the behaviour under test does not need accuracy.
QUICK = {"steps": 40, "reference_steps": 80, "progress": False}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def digits():
    return load_data("digits")


@pytest.fixture(scope="module")
def train():
    return load_data("digits:train")


@pytest.fixture(scope="module")
def test():
    return load_data("digits:test")


def pixels(images: torch.Tensor) -> np.ndarray:
    return images.reshape(len(images), -1).numpy()


def digits_card(noise_dim: int = 64) -> GeneratorCard:
    return GeneratorCard("fake", {}, [1, 8, 8], 10, list(DIGITS_NAMES),
                         {"name": "noise", "shape": [noise_dim], "distribution": "uniform_0_1"},
                         {"dtype": "float32", "layout": "NCHW", "range": [0.0, 1.0], "pixel_max": 16})


class FakeSampler(synthaug.Sampler):
    """A "generator" whose behaviour is known, driven by the sampler's seeded noise:
    ``copies`` returns training images of the asked class, ``ignore_labels`` real images of a
    class drawn from the noise, ``noise`` the noise itself as an image."""

    def __init__(self, kind: str, pool=None) -> None:
        self.kind, self.pool = kind, pool
        self.card, self.device = digits_card(), torch.device("cpu")
        self.calls = 0

    def _generate(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.kind == "noise":
            return noise.reshape(len(noise), 1, 8, 8)
        images, pool_labels = self.pool.as_float(), self.pool.labels
        classes = labels if self.kind == "copies" else (noise[:, 1] * 10).long().clamp(0, 9)
        out = []
        for u, c in zip(noise[:, 0], classes):
            members = torch.nonzero(pool_labels == c).flatten()
            out.append(images[members[int(u * len(members)) % len(members)]])
        return torch.stack(out) if out else torch.empty(0, 1, 8, 8)


# --------------------------------------------------------------------------- quality metrics


def test_fid_and_kid_are_near_zero_between_real_splits_and_far_above_for_degraded_samples(digits):
    rest, part = stratified_split(digits.labels, 0.5, seed=0)
    a, b = digits.as_float()[rest], digits.as_float()[part]
    noise = torch.randn(b.shape, generator=torch.Generator().manual_seed(0))
    degraded = (F.avg_pool2d(F.pad(b, (1, 1, 1, 1), mode="replicate"), 3, 1) + 0.15 * noise).clamp(0, 1)
    fid_real, fid_degraded = fid(pixels(a), pixels(b)), fid(pixels(a), pixels(degraded))
    assert fid_real < 0.1 and fid_degraded > 20 * fid_real
    (kid_real, std_real), (kid_degraded, std_degraded) = kid(pixels(a), pixels(b)), kid(pixels(a), pixels(degraded))
    assert abs(kid_real) < 2 * std_real
    assert kid_degraded > 20 * std_degraded and kid_degraded > 50 * abs(kid_real)


def test_kid_standard_error_covers_the_spread_between_independent_split_pairs(digits):
    x, y = pixels(digits.as_float()), digits.labels.numpy()
    order = np.argsort(y, kind="stable")
    part = np.empty(len(y), dtype=int)
    part[order] = np.arange(len(y)) % 8  # 8 disjoint stratified parts -> 4 independent pairs
    results = [kid(x[part == 2 * i], x[part == 2 * i + 1], subsets=50, seed=i) for i in range(4)]
    means, stds = np.array([m for m, _ in results]), np.array([s for _, s in results])
    assert np.std(means, ddof=1) <= stds.mean()
    assert (np.abs(means) < 2 * stds).all()


def test_precision_stays_and_recall_drops_without_a_class_coverage_drops_when_collapsed(digits):
    rest, part = stratified_split(digits.labels, 0.5, seed=0)
    real, gen, gen_labels = digits.as_float()[rest], digits.as_float()[part], digits.labels[part]
    full = precision_recall_density_coverage(pixels(real), pixels(gen))
    no_zero = precision_recall_density_coverage(pixels(real), pixels(gen[gen_labels != 0]))
    collapsed = torch.cat([gen[gen_labels == c][:1].repeat(int((gen_labels == c).sum()), 1, 1, 1) for c in range(10)])
    one_each = precision_recall_density_coverage(pixels(real), pixels(collapsed))
    assert full["precision"] > 0.85 and full["recall"] > 0.85 and full["coverage"] > 0.8
    assert no_zero["precision"] >= full["precision"] - 0.02
    assert no_zero["recall"] < full["recall"] - 0.05 and no_zero["coverage"] < full["coverage"] - 0.05
    assert one_each["coverage"] < 0.1 and one_each["recall"] < 0.1


# --------------------------------------------------------------------------- CAS and memorisation


def test_cas_of_a_generator_that_ignores_its_labels_is_near_chance(train, test):
    result = classification_accuracy_score(FakeSampler("ignore_labels", test), train, test, steps=100, seed=0,
                                           model_factory=SmallCNN)
    assert result["cas"] < 0.2 and result["real_accuracy"] > 0.8
    assert result["ratio"] == pytest.approx(result["cas"] / result["real_accuracy"])
    assert result["synthetic_size"] == len(train)


def test_memorisation_flags_a_generator_that_returns_training_images(train, test):
    labels = test.labels.clone()
    copies = FakeSampler("copies", train).sample(labels, seed=0)
    fresh = FakeSampler("copies", test).sample(labels, seed=0)  # real images the training set lacks
    flagged = memorisation(copies, labels, train.as_float(), test.as_float(), DIGITS_NAMES)
    honest = memorisation(fresh, labels, train.as_float(), test.as_float(), DIGITS_NAMES)
    assert flagged["near_copy_share"] == 1.0 and flagged["median_relative_distance"] == 0.0
    assert set(flagged["per_class_near_copy_share"].values()) == {1.0}
    assert honest["near_copy_share"] < 0.05 and 0.8 < honest["median_relative_distance"] < 1.25
    pair = flagged["closest_pairs"][0]
    assert torch.equal(copies[pair["generated"]], train.as_float()[pair["train"]])


# --------------------------------------------------------------------------- gain and recommendation


def test_gain_interval_comes_from_paired_seeds_as_computed_by_hand():
    # Seed-to-seed spread is large, the per-seed differences are small: only pairing sees it.
    base = [{"accuracy": a, "balanced_accuracy": a, "per_class": [a, a]} for a in (0.80, 0.90, 0.95)]
    treated = [{"accuracy": a, "balanced_accuracy": a, "per_class": [a, a]} for a in (0.81, 0.92, 0.95)]
    entry = summarise_fraction(1.0, 100, [0, 1, 2], [0.0, 0.5], {0.0: base, 0.5: treated}, ["a", "b"])
    gain = entry["arms"][1]["gain"]
    # differences 0.01, 0.02, 0.00: mean 0.01, sd 0.01, t(0.975, df=2) = 4.302653
    assert gain["mean"] == pytest.approx(0.01)
    assert gain["ci95"] == pytest.approx(4.302653 * 0.01 / np.sqrt(3), rel=1e-6)
    assert gain["low"] == pytest.approx(0.01 - 0.0248414, abs=1e-6) and gain["values"] == pytest.approx([0.01, 0.02, 0])
    assert entry["arms"][1]["per_class_change"]["a"]["mean"] == pytest.approx(0.01)
    assert paired_gain([0.80, 0.90, 0.95], [0.81, 0.92, 0.95]) == gain
    advice = recommend({"fractions": [entry]})
    assert advice["dose"] is None and advice["text"] == f"{DID_NOT_HELP} (best gain +1.0 ± 2.5 points at dose 0.5)"


@pytest.mark.parametrize("gains,dose,text,warnings", [
    ({0.1: (0.01, 0.004), 0.25: (0.02, 0.015), 0.5: (0.015, 0.01)}, 0.25,
     "use dose 0.25 (25% of each batch synthetic): +2.0 ± 1.5 points of accuracy", []),
    ({0.1: (0.003, 0.01), 0.5: (-0.03, 0.01)}, None,
     f"{DID_NOT_HELP} (best gain +0.3 ± 1.0 points at dose 0.1)",
     ["dose 0.5 hurts: -3.0 ± 1.0 points of accuracy (95% interval below zero)"]),
], ids=["helps", "did_not_help_and_one_dose_hurts"])
def test_recommendation_picks_the_best_dose_whose_interval_is_above_zero(gains, dose, text, warnings):
    arms = [{"dose": 0.0}] + [{"dose": d, "gain": {"mean": m, "ci95": h, "low": m - h, "high": m + h}}
                              for d, (m, h) in gains.items()]
    advice = recommend({"fractions": [{"fraction": 1.0, "arms": arms}]})
    assert (advice["dose"], advice["text"], advice["warnings"]) == (dose, text, warnings)


def test_arms_take_the_same_steps_and_a_seed_makes_an_arm_reproducible(train, test):
    subset = train.subset(stratified_split(train.labels, 0.2, seed=0)[1])
    ticks = []
    sampler = FakeSampler("noise")
    result = downstream_gain(sampler, subset, test, seeds=[0, 1], doses=[0.0, 0.25], fractions=[0.5, 1.0], steps=7,
                             batch_size=16, classical_augment=True, model_factory=SmallCNN,
                             tick=lambda x, y: (ticks.append(len(x)), (x, y))[1])
    assert ticks == [16] * (2 * 2 * 2 * 7)  # fractions x seeds x doses x steps, every batch full
    assert sampler.calls == 2 * 2 * 7  # SyntheticMix generates once per step in the dose-0.25 arms only
    half, full = (e["train_size"] for e in result["fractions"])
    assert abs(half - len(subset) / 2) <= 10 and full == len(subset)
    kwargs = {"steps": 7, "batch_size": 16, "model_factory": SmallCNN}
    first = train_arm(subset, test, sampler, 0.25, 3, classical_augment=True, **kwargs)
    assert train_arm(subset, test, sampler, 0.25, 3, classical_augment=True, **kwargs) == first
    assert train_arm(subset, test, sampler, 0.25, 3, classical_augment=False, **kwargs) != first


def test_classical_augment_is_seeded_and_keeps_labels():
    x, y = torch.rand(6, 1, 8, 8), torch.arange(6)
    a, labels = ClassicalAugment(seed=1)(x, y)
    assert torch.equal(ClassicalAugment(seed=1)(x, y)[0], a) and torch.equal(labels, y)
    assert not torch.equal(ClassicalAugment(seed=2)(x, y)[0], a) and not torch.equal(a, x)


# --------------------------------------------------------------------------- end to end, report


@pytest.fixture(scope="module")
def noise_report(train, test, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "noise"
    report = evaluate(FakeSampler("noise"), train, test, seeds=3, doses=(0, 0.5), out=out, **QUICK)
    return report, out


def test_pure_noise_did_not_help_and_the_report_holds_every_number(noise_report):
    report, out = noise_report
    assert report.dose is None and report.recommendation.startswith(DID_NOT_HELP + " (best gain ")
    saved = json.loads((out / "report.json").read_text())
    assert saved["recommendation"]["text"] == report.recommendation
    assert saved["data"]["train"]["fingerprint"] == load_data("digits:train").fingerprint()
    assert saved["settings"]["seeds"] == [0, 1, 2] and saved["settings"]["doses"] == [0.0, 0.5]
    assert saved["versions"]["torch"] == torch.__version__
    assert saved["feature_space"]["kind"] == "small_cnn" and saved["feature_space"]["dim"] == 64
    arms = saved["gain"]["fractions"][0]["arms"]
    assert len(arms[1]["gain"]["values"]) == 3 and set(arms[1]["per_class_change"]) == set(DIGITS_NAMES)
    generated, heldout = saved["quality"]["generated"], saved["quality"]["heldout_real"]
    assert generated["precision"] < 0.05 and heldout["precision"] > 0.5
    assert generated["fid"] > 10 * heldout["fid"] and saved["cas"]["cas"] < 0.3
    md = (out / "report.md").read_text()
    assert report.recommendation in md and "| 0.5 |" in md


def test_html_report_embeds_every_figure_it_references(noise_report):
    _, out = noise_report
    page = (out / "report.html").read_text()
    refs = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', page)
    images = re.findall(r"<img\b", page)
    assert len(images) >= 5 and len(refs) == len(images)
    for ref in refs:
        assert ref.startswith("data:image/png;base64,"), ref[:60]
        png = Image.open(io.BytesIO(base64.b64decode(ref.split(",", 1)[1], validate=True)))
        png.verify()
        assert png.format == "PNG"
    assert not re.search(r"url\(|<link\b|<script\b", page)


def test_without_matplotlib_json_and_markdown_only_with_a_hint(noise_report, tmp_path, monkeypatch, caplog):
    import builtins

    from synthaug.evaluation.report import HTML_HINT, write_report

    report, _ = noise_report
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    files = write_report(tmp_path, report.results, {})
    assert sorted(files) == ["json", "markdown"] and not (tmp_path / "report.html").exists()
    assert [r.getMessage() for r in caplog.records] == [HTML_HINT]


# --------------------------------------------------------------------------- the command


CLI_DEFAULTS = {"--seeds": "2", "--doses": "0,0.5", "--steps": "10", "--reference-steps": "30"}
CLI_QUICK = [x for item in CLI_DEFAULTS.items() for x in item] + ["--no-progress"]


def test_cli_prints_one_json_summary_and_reuses_the_cached_feature_network(digits_run, tmp_path, capsys):
    out = tmp_path / "report"
    argv = ["eval", digits_run.path, "--data", "digits:train", "--test", "digits:test", "--out", out, *CLI_QUICK]
    rc, stdout, _ = run_cli(capsys, *argv)
    assert rc == 0 and len(stdout.splitlines()) == 1
    summary = json.loads(stdout)
    assert summary["out"] == str(out) and summary["recommendation"] and 0 <= summary["cas_ratio"]
    assert sorted(p.name for p in out.iterdir()) == ["cache", "report.html", "report.json", "report.md"]
    first = json.loads((out / "report.json").read_text())
    assert first["feature_space"]["cached"] is False
    rc, stdout, _ = run_cli(capsys, *argv, "--force")
    second = json.loads((out / "report.json").read_text())
    assert rc == 0 and second["feature_space"]["cached"] is True
    assert second["quality"] == first["quality"] and second["gain"] == first["gain"]


def test_cli_without_test_records_the_stratified_split(digits_run, tmp_path, capsys):
    rc, stdout, _ = run_cli(capsys, "eval", digits_run.path, "--data", "digits:train", "--out", tmp_path / "r",
                            *CLI_QUICK)
    split = json.loads((tmp_path / "r" / "report.json").read_text())["data"]["split"]
    assert rc == 0 and split["test_fraction"] == 0.25 and split["seed"] == 0
    assert split["train_size"] + split["test_size"] == 1347 and split["test_size"] == pytest.approx(337, abs=5)


def _npz(path, classes=10, per_class=30, size=8, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), per_class)
    np.savez(path, images=rng.integers(0, 17, (len(labels), size, size), dtype=np.uint8), labels=labels,
             pixel_max=np.array(16))
    return path


WRONG_SHAPE_EXTRACTOR = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten())


def _onnx_extractor(path, channels=3):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Flatten", ["images"], ["features"])], "fx",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", channels, 8, 8])],
                              [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", channels * 64])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


BAD_INPUT = [
    ("classes", ["--data", "{npz3}"], ["the training data has 3 classes (0, 1, 2)", "makes 10"]),
    ("shape", ["--data", "{npz16}"], ["images are 1x16x16", "makes 1x8x8", "--resize"]),
    ("too_few", ["--data", "{npz_few}", "--fractions", "0.1,1"],
     ["class '0' has 6 training image(s)", "fraction 0.1 needs at least 20 per class"]),
    ("dose", ["--data", "digits:train", "--doses", "0,1.5"], ["dose: expected a share in [0, 1], got 1.5"]),
    ("fraction", ["--data", "digits:train", "--fractions", "0"], ["fraction: expected a share in (0, 1], got 0.0"]),
    ("seeds", ["--data", "digits:train", "--seeds", "1"], ["seeds: expected at least 2 distinct seeds"]),
    ("not_a_number", ["--data", "digits:train", "--doses", "0,half"], ["--doses: expected comma-separated numbers"]),
    ("extractor_module", ["--data", "digits:train", "--feature-extractor", "test_eval:WRONG_SHAPE_EXTRACTOR"],
     ["test_eval:WRONG_SHAPE_EXTRACTOR", "expected it to take images [N, 1, 8, 8]"]),
    ("extractor_onnx", ["--data", "digits:train", "--feature-extractor", "{onnx}"],
     ["expects input [N, 3, 8, 8]", "the data's images are [N, 1, 8, 8]"]),
    ("classifier", ["--data", "digits:train", "--classifier", "vgg"], ["classifier: expected small_cnn, resnet"]),
]


@pytest.mark.parametrize("case,extra,needles", BAD_INPUT, ids=[case for case, _, _ in BAD_INPUT])
def test_bad_input_is_one_line_and_the_existing_report_survives(digits_run, tmp_path, capsys, case, extra,
                                                                 needles):
    paths = {"npz3": _npz(tmp_path / "three.npz", classes=3), "npz16": _npz(tmp_path / "big.npz", size=16),
             "npz_few": _npz(tmp_path / "few.npz", per_class=8), "onnx": _onnx_extractor(tmp_path / "fx.onnx")}
    out = tmp_path / "report"
    out.mkdir()
    (out / "report.json").write_text('{\n  "synthaug_eval_format": 1,\n  "earlier": true\n}\n')  # an earlier report
    before = snapshot(out)
    own = [a.format(**paths) for a in extra]
    defaults = [x for key, value in CLI_DEFAULTS.items() if key not in own for x in (key, value)]
    expect_error(capsys, "eval", [digits_run.path, *own, *defaults, "--no-progress", "--out", out, "--force"],
                 *needles)
    assert snapshot(out) == before


@pytest.mark.parametrize("make,needle", [
    (lambda d: (d / "report").mkdir() or (d / "report" / "notes.txt").write_text("mine") and d / "report",
     "is not empty (holds notes.txt): pass --force"),
    (lambda d: (d / "file").write_text("x") and d / "file", "expected a directory, got an existing file"),
    (lambda d: (d / "file").write_text("x") and d / "file" / "report", "is not a directory"),
], ids=["not_empty", "a_file", "under_a_file"])
def test_report_dir_must_be_empty_or_forced_and_creatable(digits_run, tmp_path, capsys, make, needle):
    out = make(tmp_path)
    before = snapshot(tmp_path)
    expect_error(capsys, "eval", [digits_run.path, "--data", "digits:train", "--out", out, *CLI_QUICK], needle)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("name", ["report.json", "report.md", "report.html"])
def test_force_never_overwrites_a_report_file_eval_did_not_write(digits_run, tmp_path, capsys, name):
    out = tmp_path / "report"
    out.mkdir()
    (out / name).write_text("the user's own notes")
    before = snapshot(tmp_path)
    expect_error(capsys, "eval", [digits_run.path, "--data", "digits:train", "--out", out, *CLI_QUICK, "--force"],
                 f"holds {name} that synthaug eval did not write")
    assert snapshot(tmp_path) == before


def test_resize_converts_the_data_to_the_generators_shape(tmp_path, capsys):
    data = _npz(tmp_path / "big.npz", size=16)
    with pytest.raises(SynthaugError, match="pass resize=True"):
        evaluate(FakeSampler("noise"), data, seeds=2, doses=(0, 0.5), **QUICK)
    report = evaluate(FakeSampler("noise"), data, seeds=2, doses=(0, 0.5), resize=True, steps=5, reference_steps=10,
                      progress=False)
    assert report["data"]["train"]["image_shape"] == [1, 8, 8] and report["data"]["resized"] is True
    assert capsys.readouterr().out == ""  # the library prints nothing on stdout


@pytest.mark.parametrize("kind", ["module", "onnx"])
def test_user_feature_extractor_is_used_and_named(train, test, tmp_path, kind):
    extractor = nn.Flatten() if kind == "module" else str(_onnx_extractor(tmp_path / "flat.onnx", channels=1))
    report = evaluate(FakeSampler("copies", train), train, test, seeds=2, doses=(0, 0.5),
                      feature_extractor=extractor, steps=5, reference_steps=10, progress=False)
    space = report["feature_space"]
    assert space["kind"] == kind and space["dim"] == 64
    assert ("Flatten" if kind == "module" else "flat.onnx") in space["description"]
    # copies of training images have the training images' own features: every one is inside a real ball
    assert report["quality"]["generated"]["precision"] == 1.0


def test_memorisation_also_checks_the_unlabeled_images(train, test):
    rest, part = stratified_split(train.labels, 0.5, seed=0)
    labelled, unlabeled = train.subset(rest), train.subset(part)
    kwargs = {"seeds": 2, "doses": (0, 0.5), "feature_extractor": nn.Flatten(), "steps": 5, "reference_steps": 10,
              "progress": False}
    sampler = FakeSampler("copies", unlabeled)
    alone = evaluate(sampler, labelled, test, **kwargs)
    both = evaluate(sampler, labelled, test, unlabeled=unlabeled, **kwargs)
    assert alone["memorisation"]["near_copy_share"] < 0.1 and both["memorisation"]["near_copy_share"] == 1.0
    assert both["data"]["unlabeled"] == {"size": len(unlabeled)}


def tiny_classifier(channels: int, num_classes: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(channels * 64, num_classes))


@pytest.mark.parametrize("spec,kind", [("small_cnn", SmallCNN), ("resnet", SmallResNet),
                                       ("test_eval:tiny_classifier", nn.Sequential)])
def test_classifier_by_name_or_module_function_trains_and_predicts(spec, kind):
    factory, name = classifier_factory(spec)
    x, y = torch.rand(20, 1, 8, 8), torch.arange(20) % 4
    model = fit_steps(x, y, 4, steps=2, seed=0, model_factory=factory)
    assert name == spec and isinstance(model, kind) and predict(model, x).shape == (20,)


def test_a_split_of_the_generators_own_training_data_is_flagged_as_optimistic(train):
    sampler = FakeSampler("copies", train)
    sampler.card.dataset = {"name": "digits:train", "fingerprint": train.fingerprint()}
    report = evaluate(sampler, train, seeds=2, doses=(0, 0.5), feature_extractor=nn.Flatten(), steps=5,
                      reference_steps=10, progress=False)
    assert report["data"]["split"]["source_fingerprint"] == train.fingerprint()
    assert any("held-out test split included" in note for note in report["notes"])


# --------------------------------------------------------------------------- second audit


@pytest.mark.parametrize("kind", ["npz with images only", "flat folder"])
def test_cli_unlabeled_reads_what_fit_unlabeled_reads(digits_run, tmp_path, capsys, kind):
    images = load_data("digits:test").images[:30, 0].numpy()  # uint8 0..16
    if kind == "flat folder":
        (tmp_path / "pool").mkdir()
        for i, image in enumerate(images):
            Image.fromarray((image.astype(np.uint16) * 255 // 16).astype(np.uint8)).save(tmp_path / "pool" / f"{i}.png")
        pool = tmp_path / "pool"
    else:
        pool = tmp_path / "pool.npz"
        np.savez(pool, images=images)
    rc, out, err = run_cli(capsys, "eval", digits_run.path, "--data", "digits:train", "--test", "digits:test",
                           "--unlabeled", pool, "--out", tmp_path / "report", *CLI_QUICK)
    assert rc == 0, err
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["data"]["unlabeled"] == {"size": 30}


def test_cli_out_inside_the_data_folder_is_refused(digits_run, tmp_path, capsys):
    data = tmp_path / "data"
    for c in range(10):
        (data / str(c)).mkdir(parents=True)
        for i, image in enumerate(load_data("digits:train").images[load_data("digits:train").labels == c][:4]):
            Image.fromarray((image[0].numpy().astype(np.uint16) * 255 // 16).astype(np.uint8)).save(
                data / str(c) / f"{i}.png")
    before = snapshot(tmp_path)
    expect_error(capsys, "eval", [digits_run.path, "--data", data, "--test", "digits:test", "--out",
                                  data / "report", *CLI_QUICK],
                 "the report directory", "lies inside the image folder", "choose an --out outside the data")
    assert snapshot(tmp_path) == before and not (data / "report").exists()


@pytest.mark.parametrize("make,needles", [
    (lambda out: (out / "cache").write_text("mine"), ["cache is a file", "expected eval's folder"]),
    (lambda out: (out / "cache").mkdir() or (out / "cache" / "notes.txt").write_text("mine"),
     ["holds files synthaug eval did not write (notes.txt)"]),
], ids=["cache is a file", "cache is the user's folder"])
@pytest.mark.parametrize("force", [False, True], ids=["", "force"])
def test_a_cache_entry_that_is_not_evals_is_refused_before_any_work(digits_run, tmp_path, capsys, make, needles,
                                                                    force):
    out = tmp_path / "report"
    out.mkdir()
    make(out)
    before = snapshot(tmp_path)
    expect_error(capsys, "eval", [digits_run.path, "--data", "digits:train", "--out", out, *CLI_QUICK,
                                  *(["--force"] if force else [])], *needles)
    assert snapshot(tmp_path) == before


USER_MODULES = {
    "syntax_error": "def build(:\n",
    "raises_on_import": "raise RuntimeError('no GPU here')\n",
    "attribute_raises": "def __getattr__(name):\n    raise RuntimeError(f'cannot make {name}')\n",
}


@pytest.mark.parametrize("option", ["--feature-extractor", "--classifier"])
@pytest.mark.parametrize("module,needle", [
    ("syntax_error", "importing module 'syntax_error' failed: SyntaxError"),
    ("raises_on_import", "importing module 'raises_on_import' failed: RuntimeError: no GPU here"),
    ("attribute_raises", "reading 'build' of module 'attribute_raises' failed: RuntimeError: cannot make build"),
])
def test_a_user_module_that_fails_to_import_is_one_line(digits_run, tmp_path, capsys, monkeypatch, option, module,
                                                        needle):
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / f"{module}.py").write_text(USER_MODULES[module])
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    monkeypatch.delitem(sys.modules, module, raising=False)
    expect_error(capsys, "eval", [digits_run.path, "--data", "digits:train", "--out", tmp_path / "report",
                                  option, f"{module}:build", *CLI_QUICK], needle)
    assert not (tmp_path / "report").exists()
