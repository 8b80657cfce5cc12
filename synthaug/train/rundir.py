"""The run directory: refuse to clobber, lock it, resume it, or replace it atomically.

Guarantees (docs/files.md states them for users):

- ``--force`` only ever deletes what ``fit`` itself wrote: the card, weights, checkpoint, log,
  feature network (``--eval-every``), sample grids, its temp files and its lock file. A
  directory holding anything else (a user's file, a subfolder, a link, even ``model.onnx`` or
  ``samples.npz`` that ``export``/``sample`` wrote there at the user's request) is refused with
  the names of those entries; nothing is deleted. A ``card.json`` that is no valid card is not
  synthaug's either.
- A replacing (``--force``) fit trains in a hidden sibling directory and swaps it in only when
  its first checkpoint exists: interrupted before that, it leaves the old run untouched and no
  sibling behind. The swap is one atomic ``renameat2(RENAME_EXCHANGE)`` where the system has it.
- One process writes a run at a time (:class:`~synthaug.train.lock.RunLock`).
- The data is never inside the run directory, and the run directory never inside an image
  folder (it would become a class of the next fit).
- A symbolic link as ``--out`` stands for the directory it points to.
"""

from __future__ import annotations

import ctypes
import errno
import glob
import logging
import os
import re
import secrets
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import temp_file_target
from ..card import MAX_CARD_BYTES, GeneratorCard
from ..data.sources import builtin_name
from ..errors import USER_ERRORS, SynthaugError
from ..grid import is_synthaug_grid
from ..messages import arg
from ..layout import (CARD_FILE, CHECKPOINT_FILE, FEATURES_FILE, LOCK_FILE, LOG_FILE, RUN_FILES, SAMPLES_REGEX,
                      TENSORBOARD_DIR, TENSORBOARD_EVENTS_REGEX, WEIGHTS_FILE, WRITE_PROBE)
from ..weights import read_card
from .lock import RunLock, check_not_in_use

__all__ = ["check_data_outside_run", "check_out_outside_data", "check_run_dir", "fit_named_entries",
           "resolve_run_path", "run_contents", "RunContents", "RunDirectory"]

log = logging.getLogger("synthaug")

_SAMPLES = re.compile(SAMPLES_REGEX)
_EVENTS = re.compile(TENSORBOARD_EVENTS_REGEX)
_LOG_HEADER = b"step,epoch,time_s"  # how every log.csv that fit writes begins
_SHOWN_NAMES = 5


def resolve_run_path(out: str | os.PathLike) -> Path:
    """The absolute real path of ``out``: a symlink stands for its target, which must exist."""
    out = Path(out)
    if out.is_symlink() and not out.exists():
        raise SynthaugError(f"{arg('out', out)} is a symbolic link to {os.readlink(out)}, which does not exist: "
                            f"expected a link to a run directory, or a plain path")
    return out.resolve()


def check_data_outside_run(out: Path, sources: Iterable[Any]) -> None:
    """Refuse data inside the run directory (``--force`` would replace it, and a run directory
    holds only synthaug's files) and a run directory inside an image folder (it would become a
    class the next time that folder is fitted). ``out`` is resolved; so is each data path."""
    for data, source in _data_paths(sources):
        if data == out or out in data.parents:
            raise SynthaugError(f"data {os.fspath(source)} lies inside the run directory {out}: "
                                f"expected the data outside it (move it out, or choose another out=...)")
    check_out_outside_data(out, sources, "the run directory")


def check_out_outside_data(out: Path, sources: Iterable[Any], what: str) -> None:
    """Refuse an output directory ``out`` (resolved) inside one of the image folders ``sources``:
    what synthaug writes there would become a class (or unlabelled images) of the next read.

    Example:
        >>> import tempfile
        >>> data = Path(tempfile.mkdtemp()).resolve()
        >>> check_out_outside_data(data / "cats" / "report", [data], "the report directory")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        synthaug.errors.SynthaugError: the report directory ... lies inside the image folder ...
    """
    for data, source in _data_paths(sources):
        if data.is_dir() and (data == out or data in out.parents):
            raise SynthaugError(f"{what} {out} lies inside the image folder {os.fspath(source)}: it would become "
                                f"a class of the next fit; choose an out=... outside the data")


def _data_paths(sources: Iterable[Any]) -> Iterator[tuple[Path, Any]]:
    """The resolved path of each source that names one (not built-in sets, not in-memory data)."""
    for source in sources:
        if isinstance(source, (str, os.PathLike)) and builtin_name(source) is None:
            yield Path(source).resolve(), source


@dataclass
class RunContents:
    """A directory's entries, split into fit's own files and everything else."""

    ours: list[Path] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)  # names, a "/" after folders, why after odd ones

    def describe_foreign(self) -> str:
        shown = ", ".join(self.foreign[:_SHOWN_NAMES])
        more = len(self.foreign) - _SHOWN_NAMES
        return shown + (f" and {more} more" if more > 0 else "")


def run_contents(directory: Path) -> RunContents:
    """Sort ``directory``'s entries into fit's files and foreign ones, reading marks where a name
    alone proves nothing (``card.json``, ``log.csv``, grids)."""
    entries = sorted(directory.iterdir())
    has_card = _valid_card_json(directory / CARD_FILE) or _weights_have_card(directory / WEIGHTS_FILE)
    contents = RunContents()
    for entry in entries:
        reason = _foreign_reason(entry, has_card)
        if reason is None:
            contents.ours.append(entry)
        else:
            contents.foreign.append(entry.name + reason)
    return contents


def _foreign_reason(entry: Path, has_card: bool) -> str | None:
    """None when fit wrote ``entry``; else what to add to its name in the refusal message."""
    if entry.is_symlink():
        return " (a link)"
    if entry.is_dir():
        return None if entry.name == TENSORBOARD_DIR and has_card and _only_event_files(entry) else "/"
    if not entry.is_file():
        return " (not a plain file)"
    name = entry.name
    if name in (LOCK_FILE, WRITE_PROBE) or _is_our_name(temp_file_target(name)):
        return None
    if name == CARD_FILE:
        return None if _valid_card_json(entry) else " (not a synthaug card)"
    if name == WEIGHTS_FILE:
        return None if _weights_have_card(entry) else " (no synthaug card in it)"
    if name in (CHECKPOINT_FILE, FEATURES_FILE) and has_card:  # fit writes both only after the card
        return None
    if name == LOG_FILE and (has_card or _has_log_header(entry)):
        return None
    if _SAMPLES.fullmatch(name) and (has_card or _is_grid(entry)):
        return None
    return ""


def fit_named_entries(directory: Path) -> tuple[list[Path], list[str]]:
    """``(files, others)``: the plain files of ``directory`` named as fit names its files (whatever
    they hold: for folders synthaug alone names, such as the fit-on-first-use cache's), and the
    names of everything else."""
    ours, others = [], []
    for entry in sorted(directory.iterdir()):
        name = entry.name
        if entry.is_file() and not entry.is_symlink() and (
                name in (LOCK_FILE, WRITE_PROBE) or _is_our_name(name) or _is_our_name(temp_file_target(name))):
            ours.append(entry)
        else:
            others.append(name + ("/" if entry.is_dir() else ""))
    return ours, others


def _is_our_name(name: str | None) -> bool:
    return name is not None and (name in RUN_FILES or _SAMPLES.fullmatch(name) is not None)


def _only_event_files(directory: Path) -> bool:
    """True if ``directory`` holds only plain files named as TensorBoard names its event files."""
    return all(e.is_file() and not e.is_symlink() and _EVENTS.fullmatch(e.name) for e in directory.iterdir())


def _valid_card_json(path: Path) -> bool:
    try:
        if not path.is_file() or path.stat().st_size > MAX_CARD_BYTES:
            return False
        GeneratorCard.from_json(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, *USER_ERRORS):
        return False
    return True


def _weights_have_card(path: Path) -> bool:
    if not path.is_file():
        return False
    try:
        read_card(path)
    except USER_ERRORS:
        return False
    return True


def _has_log_header(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(len(_LOG_HEADER)) == _LOG_HEADER
    except OSError:
        return False


def _is_grid(path: Path) -> bool:
    return is_synthaug_grid(path)


def check_run_dir(out: Path, resume: bool, force: bool) -> str:
    """Raise if ``out`` cannot be used as asked; changes nothing.

    Returns the mode: ``"new"`` (absent or empty), ``"resume"`` or ``"replace"`` (``--force``
    on a directory that holds only fit's files).
    """
    if resume and force:
        raise SynthaugError("expected at most one of resume=True and force=True, got both")
    if out.exists() and not out.is_dir():
        raise SynthaugError(f"{out}: expected a run directory, got an existing file")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise SynthaugError(f"cannot create run directory {out}: {parent} is not a directory")
            break
    if resume:
        if not out.is_dir():
            raise SynthaugError(f"{out}: nothing to resume: expected a run directory holding {CHECKPOINT_FILE}, "
                                f"found no such directory")
        if not (out / CHECKPOINT_FILE).is_file():
            raise SynthaugError(f"{out}: nothing to resume: expected {CHECKPOINT_FILE} in the run directory, "
                                f"found none (the fit stopped before its first checkpoint?); "
                                f"start again with force=True")
        return "resume"
    if not out.exists() or not [p for p in out.iterdir() if p.name != LOCK_FILE]:
        return "new"
    if not force:
        raise SynthaugError(f"{out} already exists: pass resume=True to continue it or force=True to replace it")
    contents = run_contents(out)
    if contents.foreign:
        raise SynthaugError(f"{out} is not empty and holds files synthaug fit did not write "
                            f"({contents.describe_foreign()}): refusing to delete them, even with force=True; "
                            f"move them out or choose another out=...")
    return "replace"


class RunDirectory:
    """``with RunDirectory(out, resume, force) as run_dir:`` holds ``out``'s lock throughout.

    Checking comes first and changes nothing (``mode``); :meth:`open` is called only after
    the data, model and device are known to be good, and gives the directory to write to; after
    every checkpoint, :meth:`checkpoint_written` gives it again (a replacing fit's first
    checkpoint moves it from the hidden sibling to ``out``).
    """

    def __init__(self, out: Path, resume: bool, force: bool) -> None:
        self.out, self._resume, self._force = out, resume, force
        try:
            self.mode = check_run_dir(out, resume, force)  # the common refusals, before anything is created
        except SynthaugError:
            if out.is_dir():
                check_not_in_use(out)  # "in use by pid N" says more than "already exists"
            raise
        self._created: list[Path] = []
        self._lock: RunLock | None = None
        self._staging: Path | None = None
        self._staging_lock: RunLock | None = None

    @property
    def resuming(self) -> bool:
        return self.mode == "resume"

    def __enter__(self) -> RunDirectory:
        try:
            if not self.resuming:
                self._created = _make_dirs(self.out)
            self._lock = RunLock(self.out).acquire()
            # Again, now that no other synthaug process can be changing it.
            self.mode = check_run_dir(self.out, self._resume, self._force)
            _remove_stale_staging(self.out)
        except BaseException:
            self._close(failed=True)
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._close(failed=exc_type is not None)

    def open(self) -> Path:
        """The directory to write to; a replacing fit gets a fresh hidden sibling of ``out``."""
        if self.mode == "replace":
            self._staging = _make_sibling(self.out, "new")
            self._staging_lock = RunLock(self._staging).acquire()
            _check_writable(self._staging)
            return self._staging
        if self.resuming:
            for stale in self.out.iterdir():  # half-written files of a run that was killed
                if _is_our_name(temp_file_target(stale.name)) and stale.is_file() and not stale.is_symlink():
                    stale.unlink(missing_ok=True)
        _check_writable(self.out)
        return self.out

    def checkpoint_written(self) -> Path:
        """After each checkpoint: where the run lives now (the first of a replacing fit swaps it in)."""
        if self._staging is not None:
            self._swap_in()
        return self.out

    def _swap_in(self) -> None:
        old = run_contents(self.out)  # someone may have put files into it while we trained
        if old.foreign:
            raise SynthaugError(f"{self.out} now holds files synthaug fit did not write "
                                f"({old.describe_foreign()}): refusing to replace it; the new run was discarded")
        staging, self._staging = self._staging, None
        try:
            retired = _swap_directories(staging, self.out)
        except OSError as err:
            self._staging = staging  # still ours to remove in _close
            raise SynthaugError(f"cannot replace {self.out}: {err.strerror or err}") from None
        old_lock, self._lock, self._staging_lock = self._lock, self._staging_lock, None
        self._lock.moved_to(self.out)
        old_lock.moved_to(retired)
        _delete_run_dir(retired)  # still locked, so no one starts writing into it meanwhile
        old_lock.release()

    def _close(self, failed: bool) -> None:
        try:
            if self._staging is not None:  # a replacing fit stopped before its first checkpoint
                _delete_run_dir(self._staging)
                self._staging = None
        finally:
            for lock in (self._staging_lock, self._lock):
                if lock is not None:
                    lock.release()
            self._staging_lock = self._lock = None
        if failed:
            for directory in reversed(self._created):  # only what this fit created, only if still empty
                try:
                    directory.rmdir()
                except OSError:
                    break


def _make_dirs(out: Path) -> list[Path]:
    """Create ``out`` and its missing parents; return the ones created, outermost first."""
    missing = [p for p in (out, *out.parents) if not p.exists()][::-1]
    created = []
    for directory in missing:
        try:
            directory.mkdir()
        except FileExistsError:
            continue  # another process made it meanwhile: not ours to remove
        except OSError as err:
            raise SynthaugError(f"cannot create run directory {out}: {err.strerror}") from None
        created.append(directory)
    return created


def _make_sibling(out: Path, kind: str) -> Path:
    """A new hidden directory beside ``out``, with the mode any new directory gets (umask)."""
    for _ in range(100):
        path = out.parent / f".{out.name}.synthaug-{kind}-{secrets.token_hex(4)}"
        try:
            os.mkdir(path, 0o777)
        except FileExistsError:
            continue
        except OSError as err:
            raise SynthaugError(f"cannot replace {out}: cannot create a directory beside it "
                                f"({err.strerror})") from None
        return path
    raise SynthaugError(f"cannot replace {out}: no free name for a directory beside it")


def _remove_stale_staging(out: Path) -> None:
    # Left by a replacing fit that was killed (SIGKILL, power loss): we hold out's lock, so no
    # live process is writing them.
    for path in out.parent.glob(f".{glob.escape(out.name)}.synthaug-new-*"):
        if path.is_dir() and not path.is_symlink():
            _delete_run_dir(path)


def _delete_run_dir(directory: Path) -> None:
    """Remove fit's files from ``directory``, then the directory if nothing else is left."""
    contents = run_contents(directory)
    for path in contents.ours:
        if path.is_dir():  # the tensorboard folder, checked to hold event files only
            for event_file in path.iterdir():
                event_file.unlink(missing_ok=True)
            path.rmdir()
        else:
            path.unlink(missing_ok=True)
    if contents.foreign:
        log.warning("kept %s: it holds files synthaug fit did not write (%s)", directory,
                    contents.describe_foreign())
        return
    try:
        directory.rmdir()
    except OSError as err:
        log.warning("could not remove %s: %s", directory, err.strerror)


def _swap_directories(new: Path, out: Path) -> Path:
    """Put ``new`` at ``out``; return where the old ``out`` went (to be deleted)."""
    if _exchange(new, out):
        return new
    # No atomic exchange on this system: two renames, with ``out`` absent for an instant.
    retired = _make_sibling(out, "old")
    os.replace(out, retired)  # over the empty placeholder directory
    try:
        os.rename(new, out)
    except OSError:
        os.rename(retired, out)
        raise
    return retired


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two directories atomically (Linux ``renameat2``); False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _check_writable(out: Path) -> None:
    probe = out / WRITE_PROBE
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise SynthaugError(f"cannot write to run directory {out}: {err.strerror}") from None
