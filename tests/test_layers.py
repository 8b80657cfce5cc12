"""The layers point one way: the import-linter contracts in ``.importlinter`` hold, and a wrong
arrow (a lower layer importing a higher one, even inside a function) breaks them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` on the tree at ``root`` (its packages first on the path)."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    return subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True)


def test_the_import_contracts_hold():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_a_wrong_arrow_breaks_them(tmp_path):
    for name in ("synthaug", "exporters"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", tmp_path)
    step = tmp_path / "synthaug" / "models" / "step.py"
    # The old cycle: the step runner (models) reaching up into evaluation from inside a function.
    step.write_text(step.read_text() + "\n\ndef _wrong():\n    from ..evaluation import pipeline\n    return pipeline\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "synthaug.models is not allowed to import synthaug.evaluation" in result.stdout
    assert "synthaug.models.step -> synthaug.evaluation.pipeline" in result.stdout


def test_every_public_module_declares_all_and_holds_what_it_names():
    import importlib
    import re

    missing, wrong = [], []
    for path in sorted([*ROOT.joinpath("synthaug").rglob("*.py"), *ROOT.joinpath("exporters").rglob("*.py")]):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if any(p.startswith("_") and p != "__init__" for p in parts):
            continue
        if not re.search(r"^__all__\s*[:=]", path.read_text(), re.M):
            missing.append("/".join(parts))
            continue
        name = ".".join(p for p in parts if p != "__init__")
        module = importlib.import_module(name)
        wrong += [f"{name}.{n}" for n in module.__all__ if not hasattr(module, n)]
    assert missing == [] and wrong == []
