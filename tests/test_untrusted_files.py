"""Untrusted model files: a model file is input, not code.

A crafted card or graph must be refused with one line before anything big is allocated; card
values are checked for type and range; ``info`` cannot forge terminal output; an ONNX graph
that returns the wrong number of images is caught; ``SyntheticReplace`` keeps loading the model
it was made with; a card without ``pixel_max`` works.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import synthaug
from conftest import CARD_KEY, TINY, expect_error, make_card, onnx_with_card, run_cli
from exporters.onnx import export
from synthaug import CardError, GeneratorCard, OnnxSampler, SynthaugError
from synthaug.models import create_generator
from synthaug.weights import save_generator

USER_ERRORS = (SynthaugError, CardError)
SHAPE, CLASSES = (1, 8, 8), 3


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """A valid tiny dcgan (1x8x8, 3 classes) as .safetensors and .onnx, the base of every crafted file."""
    d = tmp_path_factory.mktemp("tiny")
    torch.manual_seed(0)
    module = create_generator("dcgan", TINY["dcgan"]["config"], SHAPE, CLASSES).eval()
    card = make_card("dcgan", module, SHAPE, CLASSES)
    save_generator(module, card, d / "g.safetensors")
    return {"safetensors": d / "g.safetensors", "onnx": export((module, card), d / "g.onnx").path, "card": card}


def _safetensors_with_card(src: Path, dest: Path, edit, tensors_edit=None) -> Path:
    """``src``'s tensors under an edited card (written raw: no validation on the way out)."""
    with safe_open(str(src), framework="pt") as fh:
        card = json.loads(fh.metadata()[CARD_KEY])
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    edit(card)
    if tensors_edit:
        tensors = tensors_edit(tensors)
    save_file(tensors, str(dest), metadata={CARD_KEY: json.dumps(card)})
    return dest


# --------------------------------------------------------------------------- crafted files refused before allocating

def _many_classes(card):  # with embed_dim 4096: a 1.5 GiB label embedding on the old code
    card.update(num_classes=100_000, class_names=[f"c{i}" for i in range(100_000)])
    card["config"]["embed_dim"] = 4096


def _wide_gan(card):  # within the gan config ranges: about 1 GiB of hidden layers, over 3 KB of weights
    card.update(family="gan", config={"g_width": 8192, "g_layers": 4, "latent_dim": 8, "embed_dim": 4})


def _long_noise(card):  # 100 MB of noise per sample
    card["noise"]["shape"] = [25_000_000]


def _huge_image(card):  # 3e10 values per image
    card["image_shape"] = [3, 100_000, 100_000]


CRAFTED = [  # (id, base file, edit, words the one-line error must hold)
    ("100k-classes", "safetensors", _many_classes, "num_classes must be an int in 2..10000"),
    ("wide-gan", "safetensors", _wide_gan, "weights do not match the card's gan config"),
    ("long-noise", "safetensors", _long_noise, "noise shape must hold at most"),
    ("long-noise-onnx", "onnx", _long_noise, "noise shape must hold at most"),
    ("100k-classes-onnx", "onnx", _many_classes, "num_classes must be an int in 2..10000"),
    ("huge-image-onnx", "onnx", _huge_image, "image_shape height and width must be in 1..1024"),
]


def _crafted(tiny, directory: Path, case_id: str) -> tuple[Path, str]:
    _, kind, edit, needle = next(c for c in CRAFTED if c[0] == case_id)
    dest = directory / f"{case_id}.{kind}"
    if not dest.exists():
        (_safetensors_with_card if kind == "safetensors" else onnx_with_card)(tiny[kind], dest, edit)
    return dest, needle


_MEASURE = textwrap.dedent("""
    import json, re, sys
    import synthaug

    def peak_mb():
        return int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024

    def reset_peak():  # Linux: writing 5 to clear_refs resets VmHWM, so each case is measured alone
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")

    for warm in sys.argv[1:3]:  # imports and ONNX Runtime's start-up are not what we measure
        synthaug.load(warm).sample([0, 1, 2], seed=0)
    results = {}
    for path in sys.argv[3:]:
        reset_peak()
        before = peak_mb()
        try:
            synthaug.load(path).sample([0, 1, 2], seed=0)
            outcome = "loaded"
        except (synthaug.SynthaugError, synthaug.CardError) as err:
            outcome = str(err)
        except BaseException as err:  # the old code's tracebacks (and MemoryError) land here
            outcome = f"CRASH {type(err).__name__}"
        results[path] = {"outcome": outcome, "growth_mb": peak_mb() - before}
    print(json.dumps(results))
""")


@pytest.fixture(scope="module")
def crafted_load(tiny, tmp_path_factory):
    """Load and sample every crafted file in one fresh process, measuring its peak RSS growth."""
    d = tmp_path_factory.mktemp("crafted")
    paths = {case[0]: _crafted(tiny, d, case[0])[0] for case in CRAFTED}
    proc = subprocess.run([sys.executable, "-c", _MEASURE, str(tiny["safetensors"]), str(tiny["onnx"]),
                           *map(str, paths.values())], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(proc.stdout.splitlines()[-1])
    return {case_id: results[str(path)] for case_id, path in paths.items()}


@pytest.mark.parametrize("case_id", [c[0] for c in CRAFTED])
def test_crafted_file_is_refused_by_load_without_allocating(crafted_load, case_id):
    needle = next(c[3] for c in CRAFTED if c[0] == case_id)
    result = crafted_load[case_id]
    assert needle in result["outcome"] and "\n" not in result["outcome"], result
    assert result["growth_mb"] < 200, f"peak RSS grew by {result['growth_mb']:.0f} MB: {result}"


@pytest.mark.parametrize("case_id", [c[0] for c in CRAFTED])
def test_crafted_file_is_refused_by_info_and_sample(capsys, tiny, tmp_path, case_id):
    path, needle = _crafted(tiny, tmp_path, case_id)
    expect_error(capsys, "info", [path], path.name, needle)
    expect_error(capsys, "info", [path, "--json"], path.name, needle)
    out = tmp_path / "s.npz"
    expect_error(capsys, "sample", [path, "--per-class", "1", "--out", out], path.name, needle)
    assert not out.exists()


def _dims_lie(card):  # an honest 8x8 graph under a card claiming 16x16 (a size dcgan can make)
    card["image_shape"] = [1, 16, 16]


def _half_weights(tensors):
    return {k: v.half() for k, v in tensors.items()}


@pytest.mark.parametrize("kind, edit, tensors_edit, needle", [
    pytest.param("onnx", _dims_lie, None, "images: expected shape [batch, 1, 16, 16] with a dynamic batch, "
                 "got [batch, 1, 8, 8]", id="onnx-graph-shape-differs-from-card"),
    pytest.param("safetensors", lambda c: None, _half_weights, "expected F32", id="float16-weights"),
    pytest.param("safetensors", lambda c: c["config"].update(latent_dim=16), None,
                 "card's noise [8] ~ normal does not match its dcgan generator's [16] ~ normal",
                 id="noise-differs-from-config"),
])
def test_file_whose_contents_contradict_its_card(capsys, tiny, tmp_path, kind, edit, tensors_edit, needle):
    dest = tmp_path / f"lie.{kind}"
    if kind == "onnx":
        onnx_with_card(tiny["onnx"], dest, edit)
    else:
        _safetensors_with_card(tiny["safetensors"], dest, edit, tensors_edit)
    with pytest.raises(USER_ERRORS) as err:
        synthaug.load(dest).sample([0, 1], seed=0)
    assert needle in str(err.value)
    expect_error(capsys, "info", [dest], needle)


def test_oversized_safetensors_header_is_refused_before_parsing(capsys, tiny, tmp_path):
    # 10 MB of header JSON beside a valid card: safetensors would parse all of it.
    dest = _safetensors_with_card(tiny["safetensors"], tmp_path / "big_header.safetensors", lambda c: None)
    with safe_open(str(dest), framework="pt") as fh:
        tensors, meta = {k: fh.get_tensor(k) for k in fh.keys()}, fh.metadata()
    save_file(tensors, str(dest), metadata={**meta, "padding": "x" * 10_000_000})
    expect_error(capsys, "info", [dest], "big_header.safetensors", "safetensors header of at most")


def test_oversized_card_json_is_refused_before_parsing():
    text = json.dumps({"format_version": 1, "padding": "x" * (5 * 2**20)})
    with pytest.raises(CardError, match=r"expected a card of at most 4194304 bytes of JSON, got 5242\d{3}"):
        GeneratorCard.from_json(text, source="m.onnx")


# --------------------------------------------------------------------------- card values: strict types and ranges

def _card_dict(**changes):
    d = GeneratorCard("dcgan", {}, [1, 8, 8], 2, ["a", "b"], {"name": "noise", "shape": [4], "distribution": "normal"},
                      {"dtype": "float32", "layout": "NCHW", "range": [0, 1], "pixel_max": 255}).to_dict()
    for key, value in changes.items():
        section, _, sub = key.partition(".")
        if sub:
            d[section] = {**d[section], sub: value}
        else:
            d[section] = value
    return d


@pytest.mark.parametrize("changes, needle", [
    ({"output.pixel_max": "255"}, "output pixel_max must be an int in 1..255, got '255'"),
    ({"output.pixel_max": 1000}, "output pixel_max must be an int in 1..255, got 1000"),
    ({"output.pixel_max": 0}, "output pixel_max must be an int in 1..255, got 0"),
    ({"output.pixel_max": True}, "output pixel_max must be an int in 1..255, got True"),
    ({"output.pixel_max": 16.0}, "output pixel_max must be an int in 1..255, got 16.0"),
    ({"output.range": [0, 255]}, "output range must be [0, 1], got [0, 255]"),
    ({"output.dtype": "float16"}, "output dtype must be one of ('float32',), got 'float16'"),
    ({"output.layout": "NHWC"}, "output layout must be one of ('NCHW',), got 'NHWC'"),
    ({"output.scale": 2}, "output has unknown key(s) ['scale']"),
    ({"noise.shape": [-4]}, "noise shape must list 1 to 4 positive ints, got [-4]"),
    ({"noise.shape": [4.0]}, "noise shape must list 1 to 4 positive ints, got [4.0]"),
    ({"noise.shape": []}, "noise shape must list 1 to 4 positive ints, got []"),
    ({"noise.shape": [2, 2, 2, 2, 2]}, "noise shape must list 1 to 4 positive ints"),
    ({"noise.shape": [2**21]}, "noise shape must hold at most 1048576 values per sample"),
    ({"noise.name": 7}, "noise name must be a non-empty string"),
    ({"noise.seed": 3}, "noise must have exactly the keys name, shape, distribution, got ['distribution', "),
    ({"class_names": [1, 2]}, "class_names must be non-empty strings of at most 255 characters, got 1 at index 0 "
                              "(and 1 more)"),
    ({"class_names": ["a", ""]}, "got '' at index 1"),
    ({"class_names": ["a", "b" * 256]}, "at index 1"),
    ({"num_classes": True, "class_names": ["a"]}, "num_classes must be an int in 2..10000, got True"),
    ({"num_classes": 2.0}, "num_classes must be an int in 2..10000, got 2.0"),
    ({"num_classes": 10_001}, "num_classes must be an int in 2..10000, got 10001"),
    ({"image_shape": [2, 8, 8]}, "image_shape channels must be 1 or 3, got 2"),
    ({"image_shape": [1, 8, 2048]}, "image_shape height and width must be in 1..1024, got 8x2048"),
    ({"image_shape": [True, 8, 8]}, "image_shape must be [C, H, W] of ints, got [True, 8, 8]"),
    ({"family": ""}, "family must be a non-empty string of at most 64 characters, got ''"),
    ({"family": "x" * 100}, "family must be a non-empty string of at most 64 characters"),
    ({"config": {1: 2}}, "config must be an object"),
    ({"dataset": "digits"}, "dataset must be an object, got 'digits'"),
    ({"training": [1]}, "training must be an object, got [1]"),
    ({"synthaug_version": 1.0}, "synthaug_version must be a string"),
])
def test_card_values_of_wrong_type_or_range_are_named(changes, needle):
    with pytest.raises(CardError) as err:
        GeneratorCard.from_dict(_card_dict(**changes), source="m.safetensors")
    message = str(err.value)
    assert message.startswith("m.safetensors: invalid generator card: ") and needle in message, message
    assert "\n" not in message


def test_one_message_lists_every_problem_of_a_card():
    bad = _card_dict(**{"output.pixel_max": "255", "noise.shape": [-1], "class_names": [1, 2],
                        "image_shape": [2, 8, 8]})
    with pytest.raises(CardError) as err:
        GeneratorCard.from_dict(bad)
    problems = str(err.value).split(": invalid generator card: ")[1].split("; ")
    assert [p.split(" must ")[0] for p in problems] == ["image_shape channels", "class_names", "noise shape",
                                                        "output pixel_max"]


def test_boolean_format_version_is_refused():
    with pytest.raises(CardError, match="expected an integer format_version, got True"):
        GeneratorCard.from_dict(_card_dict(format_version=True))


def test_huge_values_are_cut_short_in_the_message():
    with pytest.raises(CardError) as err:
        GeneratorCard.from_dict(_card_dict(dataset="x" * 100_000))
    assert len(str(err.value)) < 300


# --------------------------------------------------------------------------- info escapes control characters

def test_info_escapes_control_characters(capsys, tmp_path):
    torch.manual_seed(0)
    module = create_generator("dcgan", TINY["dcgan"]["config"], SHAPE, CLASSES).eval()
    card = make_card("dcgan", module, SHAPE, CLASSES)
    card.class_names = ["plain", "red\x1b[31m", "two\nlines"]
    card.dataset = {"name": "data\x1b]0;owned\x07", "size": 3, "fingerprint": "f\\x"}
    path = save_generator(module, GeneratorCard.from_dict(card.to_dict()), tmp_path / "g.safetensors")
    rc, out, err = run_cli(capsys, "info", path)
    assert rc == 0 and err == ""
    lines = out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["family", "images", "classes", "noise", "config", "dataset",
                                                      "format"]
    assert "\x1b" not in out and "\x07" not in out
    assert lines[2] == r"classes:       3 (plain, red\x1b[31m, two\nlines)"
    assert lines[5] == r"dataset:       data\x1b]0;owned\x07 (3 images, f\\x)"


# --------------------------------------------------------------------------- ONNX output checked

def _batch_dropping_onnx(dest: Path, card_json: str) -> Path:
    """A graph that honours the interface's names and types but returns one image fewer than
    labels (its declared output batch is dynamic, so only the runtime check can catch it)."""
    import onnx
    from onnx import TensorProto, helper

    inputs = [helper.make_tensor_value_info("noise", TensorProto.FLOAT, ["batch", 8]),
              helper.make_tensor_value_info("labels", TensorProto.INT64, ["batch"])]
    output = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["n", 1, 8, 8])
    grey = helper.make_tensor("grey", TensorProto.FLOAT, [1, 1, 8, 8], [0.5] * 64)
    chw = helper.make_tensor("chw", TensorProto.INT64, [3], [1, 8, 8])
    one = helper.make_tensor("one", TensorProto.INT64, [1], [1])
    end = helper.make_tensor("end", TensorProto.INT64, [1], [2**62])
    axis0 = helper.make_tensor("axis0", TensorProto.INT64, [1], [0])
    nodes = [helper.make_node("Shape", ["labels"], ["b"]),
             helper.make_node("Concat", ["b", "chw"], ["full"], axis=0),
             helper.make_node("Expand", ["grey", "full"], ["all"]),
             helper.make_node("Slice", ["all", "one", "end", "axis0"], ["images"])]
    graph = helper.make_graph(nodes, "drops_one", inputs, [output], initializer=[grey, chw, one, end, axis0])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    helper.set_model_props(model, {CARD_KEY: card_json})
    onnx.checker.check_model(model)
    onnx.save(model, str(dest))
    return dest


def test_onnx_model_returning_fewer_images_than_labels(capsys, tiny, tmp_path):
    path = _batch_dropping_onnx(tmp_path / "drops.onnx", tiny["card"].to_json())
    with pytest.raises(SynthaugError, match=r"expected the model to return float32 images \[3, 1, 8, 8\] for 3 "
                                            r"labels, got float32 \[2, 1, 8, 8\]"):
        OnnxSampler(str(path)).sample([0, 1, 2], seed=0)
    out = tmp_path / "x.npz"
    expect_error(capsys, "sample", [path, "--per-class", "2", "--out", out], "drops.onnx", "[6, 1, 8, 8]",
                 "got float32 [5, 1, 8, 8]")
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["drops.onnx"]


# --------------------------------------------------------------------------- SyntheticReplace keeps its model

def _write_model(directory: Path, seed: int) -> GeneratorCard:
    """A tiny generator at ``directory/g.safetensors``; its card names the seed, so two differ."""
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    module = create_generator("dcgan", TINY["dcgan"]["config"], SHAPE, CLASSES).eval()
    card = make_card("dcgan", module, SHAPE, CLASSES)
    card.training = {"seed": seed}
    save_generator(module, card, directory / "g.safetensors")
    return card


def test_replace_keeps_its_model_after_chdir_and_refuses_another(tmp_path, monkeypatch):
    A = pytest.importorskip("albumentations")
    from synthaug.augment.albumentations import SyntheticReplace

    card_a = _write_model(tmp_path / "a", seed=1)
    _write_model(tmp_path / "b", seed=2)
    monkeypatch.chdir(tmp_path / "a")
    original = SyntheticReplace("g.safetensors", p=1.0, pool_size=2)
    saved = A.to_dict(original)
    assert saved["transform"]["generator_path"] == str(tmp_path / "a" / "g.safetensors")
    assert saved["transform"]["generator_digest"] == card_a.digest()

    monkeypatch.chdir(tmp_path / "b")  # holds another g.safetensors
    restored = A.from_dict(saved)
    assert torch.equal(restored.pool(), original.pool())
    assert restored._card.training == {"seed": 1}

    _write_model(tmp_path / "a", seed=3)  # another model now sits at the stored path
    with pytest.raises(SynthaugError, match=r"g.safetensors holds another generator than the one this transform "
                                            r"was made with \(card digest [0-9a-f]{16}, expected " + card_a.digest()):
        A.from_dict(saved).pool()


@pytest.mark.parametrize("pool_size", [10**12, 100_001, 0, True, 2.0])
def test_replace_pool_size_is_bounded(tmp_path, pool_size):
    pytest.importorskip("albumentations")
    from synthaug.augment.albumentations import SyntheticReplace

    _write_model(tmp_path, seed=0)
    with pytest.raises(SynthaugError, match=r"pool_size: expected an integer in 1..100000, got "):
        SyntheticReplace(str(tmp_path / "g.safetensors"), pool_size=pool_size)


def test_replace_pool_memory_is_bounded_once_the_card_is_known(tmp_path, monkeypatch):
    pytest.importorskip("albumentations")
    import synthaug.augment.albumentations as album

    monkeypatch.setattr(album, "MAX_POOL_BYTES", 2**20)  # 3 classes x 2000 x 8x8 float32 = 1.5 MB
    _write_model(tmp_path, seed=0)
    transform = album.SyntheticReplace(str(tmp_path / "g.safetensors"), pool_size=2000, p=1.0)
    with pytest.raises(SynthaugError, match=r"a pool of 2000 images for each of 3 classes takes 1536000 bytes, more "
                                            r"than the 1048576 allowed; expected pool_size <= 1365"):
        transform(image=np.zeros((8, 8), np.uint8), label=0)


# --------------------------------------------------------------------------- pixel_max optional

def test_card_without_pixel_max_samples_at_255(capsys, tmp_path):
    torch.manual_seed(0)
    module = create_generator("dcgan", TINY["dcgan"]["config"], SHAPE, CLASSES).eval()
    card = make_card("dcgan", module, SHAPE, CLASSES)
    card.output = {"range": [0.0, 1.0]}
    path = save_generator(module, card, tmp_path / "g.safetensors")
    assert card.pixel_max == 255
    out = tmp_path / "s.npz"
    rc, stdout, err = run_cli(capsys, "sample", path, "--per-class", "2", "--out", out)
    assert rc == 0, err
    with np.load(out) as npz:
        assert int(npz["pixel_max"]) == 255 and npz["images"].dtype == np.uint8
        assert npz["images"].shape == (6, 8, 8) and list(npz["labels"]) == [0, 0, 1, 1, 2, 2]
    rc, stdout, _ = run_cli(capsys, "info", path)
    assert rc == 0 and "pixels = round(x * 255) as uint8" in stdout
