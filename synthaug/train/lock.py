"""One writer per run directory: an exclusive ``fcntl.flock`` on ``RUN/.synthaug.lock``.

The lock file holds the holder's pid, so a second ``fit`` into the same directory can say who
is writing it. The kernel drops the lock when its holder dies, however it dies: a lock file
left behind by a killed fit blocks nobody. The holder removes the file when it is done; a
process that opened the old file just before that notices after locking that the name now
points elsewhere (or nowhere), and tries again on the current file.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from ..errors import SynthaugError
from ..layout import LOCK_FILE

_OPEN_FLAGS = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW


class RunLock:
    """Exclusive lock on one directory, held from :meth:`acquire` until :meth:`release`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._fd: int | None = None

    @property
    def path(self) -> Path:
        return self.directory / LOCK_FILE

    def acquire(self) -> RunLock:
        for _ in range(100):  # each retry means the holder released the lock and removed its file
            try:
                fd = os.open(self.path, _OPEN_FLAGS, 0o666)
            except OSError as err:
                raise SynthaugError(f"cannot write to run directory {self.directory}: {err.strerror}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_pid(fd)
                os.close(fd)
                raise _in_use(self.directory, holder) from None
            if _names_this_file(self.path, fd):
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
                self._fd = fd
                return self
            os.close(fd)
        raise SynthaugError(f"cannot lock run directory {self.directory}: its lock file keeps changing")

    def moved_to(self, directory: Path) -> None:
        """The locked directory was renamed to ``directory`` (the lock goes with its file)."""
        self.directory = directory

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            if _names_this_file(self.path, self._fd):
                self.path.unlink(missing_ok=True)  # still locked: no one can be using it
        finally:
            os.close(self._fd)
            self._fd = None


def check_not_in_use(directory: Path) -> None:
    """Raise the "in use" error if a live process holds ``directory``'s lock; creates nothing.

    For refusals that come before locking (``already exists``): the holder is the better news.
    """
    try:
        fd = os.open(directory / LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return  # no lock file, or not one we can read: nobody we can name
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _in_use(directory, _read_pid(fd)) from None
    except OSError:
        return
    finally:
        os.close(fd)  # also drops the shared lock, if we got it


def _in_use(directory: Path, holder: str) -> SynthaugError:
    return SynthaugError(f"{directory} is in use by another synthaug process (pid {holder}): "
                         f"wait for it to finish or stop it, or choose another --out")


def _names_this_file(path: Path, fd: int) -> bool:
    try:
        named = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def _read_pid(fd: int) -> str:
    # The holder writes its pid right after locking: give it a moment if we came in between.
    for _ in range(20):
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        if text:
            return text
        time.sleep(0.05)
    return "unknown"
