"""The one flock helper (synthaug.train.lock.take_lock) and its two callers' ways: the run
directory's lock refuses at once, naming the holder; the cache's lock waits up to its limit.

flock locks open files, so a second descriptor in this very process stands for another process.
"""

import fcntl
import os
import threading
import time

import pytest

from synthaug.errors import SynthaugError
from synthaug.layout import LOCK_FILE
from synthaug.train.lock import RunLock, check_not_in_use, open_shared_lock_file, take_lock


@pytest.fixture
def held(tmp_path):
    """A lock file and a descriptor holding its exclusive lock, and a second descriptor of it."""
    path = tmp_path / "x.lock"
    holder = os.open(path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_EX)
    other = os.open(path, os.O_RDWR)
    yield holder, other
    os.close(other)
    os.close(holder)


def test_a_free_lock_is_taken_and_a_held_one_refused_at_once(tmp_path, held):
    holder, other = held
    calls = []
    start = time.monotonic()
    assert take_lock(other, on_wait=lambda: calls.append(1)) is False
    assert take_lock(other, shared=True) is False
    assert time.monotonic() - start < 0.5 and calls == []  # no wait, so nothing said
    fcntl.flock(holder, fcntl.LOCK_UN)
    assert take_lock(other) is True


def test_waiting_gives_up_at_its_limit_and_says_so_once(held):
    _, other = held
    calls = []
    start = time.monotonic()
    assert take_lock(other, wait_s=0.3, on_wait=lambda: calls.append(1)) is False
    assert 0.3 <= time.monotonic() - start < 1.5 and calls == [1]


def test_waiting_ends_when_the_holder_lets_go(held):
    holder, other = held
    threading.Timer(0.2, fcntl.flock, (holder, fcntl.LOCK_UN)).start()
    assert take_lock(other, wait_s=10) is True


def test_a_shared_lock_file_is_writable_by_everyone_whatever_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        fd = open_shared_lock_file(tmp_path / ".run.lock")
    finally:
        os.umask(old)
    os.close(fd)
    assert (tmp_path / ".run.lock").stat().st_mode & 0o777 == 0o666
    (tmp_path / ".run.lock").chmod(0o444)  # another user's: still lockable through a read descriptor
    fd = open_shared_lock_file(tmp_path / ".run.lock")
    try:
        assert take_lock(fd) is True
    finally:
        os.close(fd)


def test_the_run_lock_refuses_at_once_naming_its_holder(tmp_path):
    lock = RunLock(tmp_path).acquire()
    try:
        assert (tmp_path / LOCK_FILE).read_text() == f"{os.getpid()}\n"
        start = time.monotonic()
        with pytest.raises(SynthaugError, match=rf"{tmp_path} is in use by another synthaug process "
                                                rf"\(pid {os.getpid()}\): wait for it to finish"):
            RunLock(tmp_path).acquire()
        with pytest.raises(SynthaugError, match=rf"in use by another synthaug process \(pid {os.getpid()}\)"):
            check_not_in_use(tmp_path)
        assert time.monotonic() - start < 0.5
    finally:
        lock.release()
    assert not (tmp_path / LOCK_FILE).exists()
    check_not_in_use(tmp_path)  # free: no error
    RunLock(tmp_path).acquire().release()
