"""Every example script runs (shortened) and does what it says."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_quickstart(tmp_path):
    proc = subprocess.run([sys.executable, str(EXAMPLES / "quickstart.py"), "--out", str(tmp_path / "run"),
                           "--steps", "3", "--width", "8"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["onnx_parity"] <= 1e-4 and out["torch_vs_onnx_same_seed"] <= 1e-4
    assert Path(out["grid"]).is_file()


def test_every_example_has_a_test():
    tested = {"quickstart.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} <= tested
