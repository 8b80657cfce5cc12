"""The import contracts of today's ``.importlinter``, checked against the code of an older
revision: which of them it breaks, and by which imports.

    python benchmarks/contracts_at.py c1bf12e      # the release before issue 19's refactor

Modules the old tree does not have yet are left out of the contracts (a contract about a module
that does not exist cannot be checked). Writes ``benchmarks/results/contracts_<rev>.txt``.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def contracts_for(tree: Path) -> str:
    """``.importlinter`` without the synthaug modules ``tree`` lacks (and contracts about them)."""
    text = (ROOT / ".importlinter").read_text()
    present = {p.stem if p.suffix else p.name for p in (tree / "synthaug").iterdir()}
    for name in sorted(set(re.findall(r"synthaug\.(\w+)", text)) | set(re.findall(r": (\w+)", text))):
        if name not in present:
            text = re.sub(rf"\[importlinter:contract:\w+\]\nname = [^\n]*\ntype = forbidden\nsource_modules =\n"
                          rf"    synthaug\.{name}\n.*?(?=\n\[importlinter|\Z)", "", text, flags=re.S)
            text = text.replace(f" : {name}", "")
            text = re.sub(rf"\n    synthaug\.{name}(?=\n)", "", text)
    return text


def main(rev: str) -> int:
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, check=True, capture_output=True).stdout
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp)
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(tree, filter="data")
        (tree / ".importlinter").write_text(contracts_for(tree))
        code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
        result = subprocess.run([sys.executable, "-c", code], cwd=tree, capture_output=True, text=True,
                                env={**os.environ, "PYTHONPATH": str(tree)})
    report = result.stdout[result.stdout.index("Contracts\n"):] if "Contracts\n" in result.stdout else result.stdout
    out = ROOT / "benchmarks" / "results" / f"contracts_{rev}.txt"
    out.write_text(f"# python benchmarks/contracts_at.py {rev}: today's contracts against {rev}\n\n" + report)
    sys.stdout.write(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1] if len(sys.argv) > 1 else "c1bf12e"))
