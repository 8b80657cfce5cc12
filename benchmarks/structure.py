"""Structure figures of the library at one or more git revisions, side by side.

What a newcomer meets when reading the code: how many lines, the largest module
and class, how many imports hide inside functions (the sign of a package cycle
held together by hand), how many pairs of places repeat each other, and how
large the README is.

    python benchmarks/structure.py c1bf12e HEAD          # before and after
    python benchmarks/structure.py --worktree            # the files as they are now

Writes ``benchmarks/results/structure.{json,md}``.  ``duplicates`` (the project's
tool) counts the repeated pairs; where it is not on the PATH that column is empty.
"""
from __future__ import annotations

import argparse
import ast
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ("synthaug", "exporters")
RESULTS = ROOT / "benchmarks" / "results"


def _export(rev: str, into: Path) -> None:
    """Write the tracked files of ``rev`` below ``into`` (git archive, no checkout)."""
    data = subprocess.run(["git", "archive", rev], cwd=ROOT, check=True,
                          capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(into, filter="data")


def _function_level_imports(tree: ast.AST, package: str) -> tuple[int, int]:
    """(all, internal) import statements inside a function body."""
    total = internal = 0
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.ImportFrom):
                total += 1
                if node.level > 0 or (node.module or "").split(".")[0] in LIBRARY:
                    internal += 1
            elif isinstance(node, ast.Import):
                total += 1
                if any(a.name.split(".")[0] in LIBRARY for a in node.names):
                    internal += 1
    return total, internal


def _attributes(cls: ast.ClassDef) -> int:
    names = set()
    for node in ast.walk(cls):
        if (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
                and isinstance(node.value, ast.Name) and node.value.id == "self"):
            names.add(node.attr)
    return len(names)


def measure(tree_root: Path) -> dict:
    files = sorted(p for pkg in LIBRARY for p in (tree_root / pkg).rglob("*.py"))
    lines = 0
    largest_module = ("", 0)
    largest_class = ("", 0, 0)
    fl_all = fl_internal = 0
    without_all = 0
    for path in files:
        text = path.read_text()
        n = len(text.splitlines())
        lines += n
        rel = str(path.relative_to(tree_root))
        if n > largest_module[1]:
            largest_module = (rel, n)
        tree = ast.parse(text)
        a, i = _function_level_imports(tree, rel.split("/")[0])
        fl_all += a
        fl_internal += i
        public = not any(part.startswith("_") and part != "__init__.py"
                         for part in path.relative_to(tree_root).parts)
        if public and not re.search(r"^__all__\s*[:=]", text, re.M):
            without_all += 1
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                size = node.end_lineno - node.lineno + 1
                if size > largest_class[1]:
                    largest_class = (f"{rel}:{node.name}", size, _attributes(node))
    readme = tree_root / "README.md"
    return {
        "library_lines": lines,
        "modules": len(files),
        "largest_module": {"path": largest_module[0], "lines": largest_module[1]},
        "largest_class": {"name": largest_class[0], "lines": largest_class[1],
                          "attributes": largest_class[2]},
        "function_level_imports": fl_all,
        "function_level_internal_imports": fl_internal,
        "public_modules_without___all__": without_all,
        "duplicate_pairs": _duplicates(tree_root),
        "readme_bytes": readme.stat().st_size if readme.exists() else 0,
    }


def _duplicates(tree_root: Path) -> dict | None:
    """Pairs ``duplicates`` lists in library code: all, and not marked boilerplate."""
    tool = shutil.which("duplicates")
    if tool is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        # Only library code: copy the packages alone into a tree of their own.
        for pkg in LIBRARY:
            shutil.copytree(tree_root / pkg, Path(tmp) / pkg)
        out = subprocess.run([tool, "--repo", tmp, "--most", "200", "--seconds", "120"],
                             capture_output=True, text=True).stdout
    rows = [ln for ln in out.splitlines() if re.match(r"D\d+ ", ln)]
    return {"all": len(rows), "not_boilerplate": sum("boilerplate" not in r for r in rows),
            "rows": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revs", nargs="*", help="git revisions to measure")
    parser.add_argument("--worktree", action="store_true",
                        help="also measure the working tree as it is")
    args = parser.parse_args(argv)
    results: dict[str, dict] = {}
    for rev in args.revs:
        with tempfile.TemporaryDirectory() as tmp:
            _export(rev, Path(tmp))
            sha = subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT,
                                 check=True, capture_output=True, text=True).stdout.strip()
            results[f"{rev} ({sha})" if sha != rev else rev] = measure(Path(tmp))
    if args.worktree or not args.revs:
        results["working tree"] = measure(ROOT)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "structure.json").write_text(json.dumps(results, indent=1) + "\n")
    md = _table(results)
    (RESULTS / "structure.md").write_text(md)
    sys.stdout.write(md)
    return 0


def _table(results: dict[str, dict]) -> str:
    names = list(results)
    rows = [
        ("library lines (synthaug/ + exporters/)", lambda r: r["library_lines"]),
        ("modules", lambda r: r["modules"]),
        ("largest module", lambda r: f"{r['largest_module']['path']} ({r['largest_module']['lines']})"),
        ("largest class (lines, self attributes)",
         lambda r: f"{r['largest_class']['name']} ({r['largest_class']['lines']}, "
                   f"{r['largest_class']['attributes']})"),
        ("function-level imports (internal)",
         lambda r: f"{r['function_level_imports']} ({r['function_level_internal_imports']})"),
        ("public modules without `__all__`", lambda r: r["public_modules_without___all__"]),
        ("`duplicates` pairs in library code (not boilerplate)",
         lambda r: "–" if r["duplicate_pairs"] is None else
         f"{r['duplicate_pairs']['all']} ({r['duplicate_pairs']['not_boilerplate']})"),
        ("README.md bytes", lambda r: r["readme_bytes"]),
    ]
    out = ["| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for label, get in rows:
        out.append(f"| {label} | " + " | ".join(str(get(results[n])) for n in names) + " |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
