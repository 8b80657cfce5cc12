"""Preparing a run directory: refuse to clobber, check it is writable, resume or replace.

Checking and replacing are separate steps so that ``fit`` can validate everything else (data,
image size, device) in between: a failing ``--force`` fit never deletes the old run.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..errors import SynthaugError
from ..layout import CARD_FILE, CHECKPOINT_FILE, WEIGHTS_FILE


def check_run_dir(out: str | os.PathLike, resume: bool, force: bool) -> bool:
    """Raise if ``out`` cannot be used as asked; changes nothing. True when resuming."""
    if resume and force:
        raise SynthaugError("expected at most one of --resume and --force, got both")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SynthaugError(f"{out}: expected a run directory, got an existing file")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise SynthaugError(f"cannot create run directory {out}: {parent} is not a directory")
            break
    if resume:
        if not (out / CHECKPOINT_FILE).is_file():
            raise SynthaugError(f"{out}: nothing to resume: expected {CHECKPOINT_FILE} in the run directory")
        _check_writable(out)
        return True
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise SynthaugError(f"{out} already exists: pass --resume to continue it or --force to replace it")
        if not any((out / f).exists() for f in (CARD_FILE, WEIGHTS_FILE, CHECKPOINT_FILE)):
            raise SynthaugError(f"{out} is not empty and holds no synthaug run: refusing to delete it, "
                                f"even with --force")
    return False


def open_run_dir(out: str | os.PathLike, resume: bool) -> None:
    """After :func:`check_run_dir` passed and all else is validated: make ``out`` ready to write,
    deleting an old run (``--force``) or clearing a killed run's temp files (``--resume``)."""
    out = Path(out)
    if resume:
        for stale in out.glob(".*.tmp"):  # half-written files of a run that was killed
            stale.unlink(missing_ok=True)
        return
    if out.is_dir() and any(out.iterdir()):
        shutil.rmtree(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SynthaugError(f"cannot create run directory {out}: {err.strerror}") from None
    _check_writable(out)


def _check_writable(out: Path) -> None:
    probe = out / ".synthaug-write-test"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise SynthaugError(f"cannot write to run directory {out}: {err.strerror}") from None
