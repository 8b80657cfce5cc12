"""The documentation: the mkdocs site builds without a warning, and the README stays a short
front page whose links and test command are true."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
README_MAX_BYTES = 12_000


def test_mkdocs_builds_strictly(tmp_path):
    pytest.importorskip("mkdocs", reason="the docs extra: pip install -e '.[docs]'")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # mkdocs-material's banner about MkDocs 2.0
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "site" / "api" / "index.html").is_file()


def test_readme_is_short():
    size = README.stat().st_size
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes, over {README_MAX_BYTES}: move detail to docs/"


def relative_links(text: str) -> list[str]:
    """Targets of the Markdown links in ``text`` that point into the repository."""
    targets = re.findall(r"\[[^\]]*\]\(([^)\s]+)\)", text)
    return [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:|#", t)]


def test_readme_links_point_at_files():
    links = relative_links(README.read_text())
    assert any(link.startswith("docs/") for link in links) and any(link.startswith("benchmarks/") for link in links)
    missing = [link for link in links if not (ROOT / link.split("#")[0]).is_file()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


def test_readme_test_command_is_what_ci_runs():
    match = re.search(r"<!-- test-command -->\s*```bash\n(.*?)\n```", README.read_text(), re.S)
    assert match, "README.md lost its test command (the bash block after <!-- test-command -->)"
    ci_lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.strip()]
    assert match.group(1).strip() == ci_lines[-1].strip()
