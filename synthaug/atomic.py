"""Crash-safe file writes: write a temp file beside the target, fsync, then ``os.replace``.

A reader (or a ``fit`` killed at any moment) sees either the old file or the new one, never
a torn one.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import SynthaugError, first_line

__all__ = ["atomic_path", "atomic_write", "atomic_write_text", "check_writable_target", "temp_file_target"]

#: A temp file's name: ``.{target name}.{8 random characters}.tmp`` (mkstemp's alphabet included,
#: for temp files left by older versions).
_TEMP_NAME = re.compile(r"\.(?P<target>.+)\.[A-Za-z0-9_]{8}\.tmp")


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's directory; on success move it over the target.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> with atomic_path(d / "x.txt") as tmp:
        ...     _ = tmp.write_text("hello")
        >>> (d / "x.txt").read_text()
        'hello'
    """
    target = Path(target)
    check_writable_target(target)
    try:
        tmp = _create_temp_file(target)
        mode = tmp.stat().st_mode & 0o777  # 0o666 less the umask, as the kernel applied it
    except OSError as err:
        raise SynthaugError(f"cannot write {target}: {err.strerror or err}") from None
    try:
        yield tmp
        # Some writers replace the temp file with one of their own (safetensors' is 0600).
        os.chmod(tmp, mode)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise SynthaugError(f"cannot write {target}: {err.strerror or err}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


def check_writable_target(target: str | os.PathLike) -> None:
    """Raise a one-line error if ``target`` cannot become a file: say why."""
    target = Path(target)
    parent = target.parent
    if target.is_dir():
        raise SynthaugError(f"cannot write {target}: it is a directory (expected a file path)")
    if not parent.exists():
        raise SynthaugError(f"cannot write {target}: directory {parent} does not exist")
    if not parent.is_dir():
        raise SynthaugError(f"cannot write {target}: {parent} is not a directory")


def atomic_write(target: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp_path)`` and atomically move the result to ``target``.

    ``write`` is a serialiser (``torch.save``, ``save_file``, ``PIL.Image.save``, ...): some of
    them report a full disk as ``RuntimeError`` (``torch.save``: "unexpected pos ..."), not
    ``OSError``; both become a one-line error and leave any earlier ``target`` untouched.
    """
    with atomic_path(target) as tmp:
        try:
            write(tmp)
        except RuntimeError as err:
            first = first_line(err)
            raise SynthaugError(f"cannot write {target}: {first} (is the disk full?)") from None
    return Path(target)


def atomic_write_text(target: str | os.PathLike, text: str) -> Path:
    return atomic_write(target, lambda p: p.write_text(text, encoding="utf-8"))


def temp_file_target(name: str) -> str | None:
    """The name of the file a temp file of :func:`atomic_path` was for, or None if ``name`` is
    not such a temp file (so ``--force`` can tell its own leftovers from a user's files)."""
    match = _TEMP_NAME.fullmatch(name)
    return match["target"] if match else None


def _create_temp_file(target: Path) -> Path:
    # Not mkstemp: it creates files with mode 0600 whatever the umask. os.open with 0o666 lets
    # the kernel apply the umask, so the final file gets the mode any other new file would.
    for _ in range(100):
        tmp = target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"no free temp file name beside {target}")


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not every filesystem allows opening a directory.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
