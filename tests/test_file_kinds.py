"""One table maps model file kinds to their card reader, sampler and exporter (issue 10)."""

from __future__ import annotations

import pytest
from conftest import TINY

import synthaug
from exporters.onnx import export
from synthaug.errors import SynthaugError
from synthaug.card import GeneratorCard
from synthaug.layout import CARD_FILE
from synthaug.models import ConditionalGenerator, list_models
from synthaug.models.registry import get_family
from synthaug.runtime import OnnxSampler, TorchSampler
from synthaug.runtime.file_kinds import FILE_KINDS, ONNX, RUN_DIRECTORY, SAFETENSORS, kind_of, resolve
from synthaug.runtime.load import read_any_card


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    """A tiny fitted gan as every kind: run directory, its weights, its ONNX export."""
    out = tmp_path_factory.mktemp("kinds") / "run"
    run = synthaug.fit("digits", out=out, model="gan", config=TINY["gan"]["config"], steps=2, progress=False)
    onnx_path = export(run.path, out.parent / "model.onnx").path
    return {"run": run, RUN_DIRECTORY: run.path, SAFETENSORS: run.weights_path, ONNX: onnx_path}


KINDS = [(RUN_DIRECTORY, TorchSampler), (SAFETENSORS, TorchSampler), (ONNX, OnnxSampler)]


def test_the_table_lists_every_kind_once():
    assert FILE_KINDS == (RUN_DIRECTORY, SAFETENSORS, ONNX)


@pytest.mark.parametrize("kind, sampler_type", KINDS, ids=lambda k: getattr(k, "name", ""))
def test_each_kind_resolves_and_reads_the_runs_card(paths, kind, sampler_type):
    run_card = GeneratorCard.from_json((paths["run"].path / CARD_FILE).read_text()).to_dict()
    got_kind, got_path = resolve(str(paths[kind]))
    assert (got_kind, got_path) == (kind, paths[kind])
    assert kind.read_card(got_path).to_dict() == run_card
    assert read_any_card(paths[kind]).to_dict() == run_card
    sampler = synthaug.load(paths[kind])
    assert type(sampler) is sampler_type
    assert sampler.card.to_dict() == run_card
    assert sampler.sample([0, 1], seed=0).shape == (2, 1, 8, 8)


@pytest.mark.parametrize("kind, exportable", [(RUN_DIRECTORY, True), (SAFETENSORS, True), (ONNX, False)],
                         ids=lambda k: getattr(k, "name", ""))
def test_only_torch_kinds_export(paths, kind, exportable, tmp_path):
    assert (kind.load_generator is not None) is exportable
    if exportable:
        assert export(paths[kind], tmp_path / "again.onnx").max_abs_diff < 1e-4
    else:
        with pytest.raises(SynthaugError, match=r"expected a run directory or a \.safetensors generator to export$"):
            export(paths[kind], tmp_path / "again.onnx")


def test_unknown_suffix_is_one_line_error_naming_what_is_accepted(tmp_path):
    weights = tmp_path / "g.pt"
    weights.write_bytes(b"not a model")
    assert kind_of(weights) is None
    with pytest.raises(SynthaugError) as err:
        resolve(weights)
    assert str(err.value) == f"{weights}: expected a run directory, .safetensors or .onnx file, got .pt"
    with pytest.raises(SynthaugError) as err:
        synthaug.load(tmp_path / "missing")
    assert str(err.value) == (f"{tmp_path / 'missing'}: no such file or directory "
                              f"(expected a run directory, .safetensors or .onnx)")


def test_run_directory_without_weights_is_refused(tmp_path):
    with pytest.raises(SynthaugError) as err:
        RUN_DIRECTORY.read_card(tmp_path)
    assert str(err.value) == f"{tmp_path}: expected a run directory holding generator.safetensors, found none"


@pytest.mark.parametrize("family", list_models())
def test_every_family_declares_its_export_capabilities(family):
    # Declared on the base class, so the exporter reads an attribute, never getattr with a default.
    cls = get_family(family).generator_cls
    assert "parity_min_equal" in vars(ConditionalGenerator)
    value = cls.parity_min_equal
    assert value is None or (isinstance(value, float) and 0.0 < value <= 1.0)
    # Only the autoregressive sampler relaxes exact parity.
    assert (value is not None) == (family == "pixelrnn")
