"""File locks (``fcntl.flock``): the one helper that takes them, and the locks synthaug holds.

:func:`take_lock` takes a lock on an open lock file, at once or waiting for its holder up to a
limit; the kernel drops a lock when its holder dies, however it dies, so a lock file left behind
by a killed process blocks nobody. Its callers:

- :class:`RunLock`, one writer per run directory: an exclusive lock on ``RUN/.synthaug.lock``,
  refused at once when held. The lock file holds the holder's pid, so a second ``fit`` into the
  same directory can say who is writing it. The holder removes the file when it is done; a
  process that opened the old file just before that notices after locking that the name now
  points elsewhere (or nowhere), and tries again on the current file.
- the fit-on-first-use cache (:mod:`synthaug.train.cache`), whose processes asking for the same
  run wait for the one fitting it; its lock files (:func:`open_shared_lock_file`) stay, and any
  user of a shared cache can lock them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import SynthaugError
from ..layout import LOCK_FILE

__all__ = ["take_lock", "open_shared_lock_file", "RunLock", "check_not_in_use"]

_OPEN_FLAGS = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW


def take_lock(fd: int, *, wait_s: float = 0.0, on_wait: Callable[[], None] | None = None,
              shared: bool = False) -> bool:
    """Lock the open file ``fd`` (exclusive, or ``shared``): True once it holds the lock, False
    when another open file still holds it after ``wait_s`` seconds (0, the default: at once).

    While waiting it tries again every second, and a last time at the limit;
    ``on_wait()`` is called once, when the wait begins (the first try found the lock held).
    Errors other than "held by another" (``EBADF``, ``ENOLCK``) are raised as they are.
    """
    operation = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB
    if _try_lock(fd, operation):
        return True
    if wait_s <= 0:
        return False
    if on_wait is not None:
        on_wait()
    deadline = time.monotonic() + wait_s
    while True:
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        if _try_lock(fd, operation):
            return True
        if time.monotonic() >= deadline:
            return False


def _try_lock(fd: int, operation: int) -> bool:
    try:
        fcntl.flock(fd, operation)
    except BlockingIOError:
        return False
    return True


def open_shared_lock_file(path: Path) -> int:
    """A descriptor of the lock file ``path``, which stays and may be shared between users: a new
    one is made writable by everyone whatever the umask, and another user's read-only one is
    opened read-only (``flock`` needs no write access), so no user locks another out."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    except FileExistsError:
        try:
            return os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except PermissionError:  # another user's lock file: locking needs only a read descriptor
            return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    with contextlib.suppress(OSError):
        os.fchmod(fd, 0o666)  # the umask took write access from the group and others
    return fd


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
            if not take_lock(fd):  # held: refused at once, naming the holder
                holder = _read_pid(fd)
                os.close(fd)
                raise _in_use(self.directory, holder)
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
        free = take_lock(fd, shared=True)
    except OSError:
        return
    else:
        if not free:
            raise _in_use(directory, _read_pid(fd))
    finally:
        os.close(fd)  # also drops the shared lock, if we got it


def _in_use(directory: Path, holder: str) -> SynthaugError:
    return SynthaugError(f"{directory} is in use by another synthaug process (pid {holder}): "
                         f"wait for it to finish or stop it, or choose another out=...")


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
