"""The README's deploy snippet runs with numpy + onnxruntime only."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import synthaug

from exporters.onnx import export
from synthaug.models import list_models

README = Path(__file__).resolve().parents[1] / "docs" / "deploy.md"

BLOCK_IMPORTS = '''
import sys
class _Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "synthaug", "exporters"):
            raise ImportError(f"{name} must not be needed to sample from the ONNX file")
sys.meta_path.insert(0, _Blocked())
'''

REPORT = '''
import json as _json
print(_json.dumps({"shape": list(images.shape), "dtype": str(images.dtype), "min": float(images.min()),
                   "max": float(images.max()), "pixel_max": int(pixels.max()), "labels": labels.tolist(),
                   "torch_loaded": "torch" in sys.modules}))
'''


def readme_snippet() -> str:
    match = re.search(r"<!-- deploy-snippet -->\s*```python\n(.*?)```", README.read_text(), re.S)
    assert match, "docs/deploy.md lost its deploy snippet markers"
    return match.group(1)


def test_snippet_is_at_most_a_dozen_lines():
    assert len(readme_snippet().strip().splitlines()) <= 12


@pytest.mark.parametrize("family", list_models())
def test_readme_snippet_samples_without_torch_or_synthaug(tiny_generator, tmp_path, family, digits_run):
    if family == "dcgan":
        export(digits_run.path, tmp_path / "model.onnx")  # a fitted digits model, as in the README
    else:
        module, card = tiny_generator(family, num_classes=10)
        card.class_names = [str(i) for i in range(10)]
        export((module, card), tmp_path / "model.onnx")
    script = BLOCK_IMPORTS + readme_snippet() + REPORT
    proc = subprocess.run([sys.executable, "-I", "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["shape"][0] == 3 and out["dtype"] == "float32"
    assert 0.0 <= out["min"] and out["max"] <= 1.0
    assert out["labels"] == [3, 3, 7]
    assert not out["torch_loaded"]


def test_blocker_really_blocks(tmp_path):
    proc = subprocess.run([sys.executable, "-I", "-c", BLOCK_IMPORTS + "import torch"], capture_output=True,
                          text=True)
    assert proc.returncode != 0 and "must not be needed" in proc.stderr


TRAINING_PACKAGES = ("synthaug.train", "synthaug.augment", "synthaug.evaluation", "synthaug.metrics", "synthaug.data")


@pytest.mark.parametrize("source", ["model.onnx", "generator.safetensors", "run"])
def test_the_deploy_side_loads_and_samples_without_training_code(digits_run, tmp_path, source):
    """`synthaug.runtime` (load, samplers) imports no training, augmenting, evaluation or data
    code, with the model given as an ONNX file, a safetensors file or a run directory."""
    path = {"model.onnx": tmp_path / "model.onnx", "generator.safetensors": digits_run.weights_path,
            "run": digits_run.path}[source]
    if source == "model.onnx":
        export(digits_run.path, path)
    code = (f"import sys, json\nfrom synthaug.runtime import load\nimages = load({str(path)!r}).sample([3, 7], seed=0)\n"
            f"print(json.dumps({{'shape': list(images.shape), 'loaded': sorted(m for m in sys.modules "
            f"if m.startswith({TRAINING_PACKAGES!r}))}}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out == {"shape": [2, 1, 8, 8], "loaded": []}


def test_export_is_part_of_the_public_api(digits_run, tmp_path):
    import exporters

    assert synthaug.export is exporters.export and "export" in synthaug.__all__
    result = synthaug.export(digits_run.path, tmp_path / "m.onnx")
    onnx = synthaug.load(result.path)
    assert torch.allclose(onnx.sample([1, 2], seed=0), synthaug.load(digits_run.path).sample([1, 2], seed=0), atol=1e-4)
