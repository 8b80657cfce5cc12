"""The synthetic pools of :class:`~synthaug.augment.dataset.SyntheticDataset`: one block of
memory (a memfd, or an unlinked temporary file) shared with DataLoader workers without copies.

:class:`SharedPools` maps it and says where the current epoch and the two slots' pools are;
``_reserve`` claims its bytes up front, so a shortfall is an error at construction, not a crash
when a page is first written.
"""

from __future__ import annotations

import errno
import math
import mmap
import os
import tempfile
import weakref
from typing import Any

import torch

from ..errors import SynthaugError

__all__ = ["SharedPools"]


class SharedPools:
    """The current epoch, the pool each slot holds (``epoch // refresh_every``) and the two
    slots' pools, in one block of memory shared with DataLoader workers without copies.

    The block is a memfd (or, with ``keep_in_memory=False`` or where there is no memfd, an
    unlinked temporary file) mapped ``MAP_SHARED``: forked workers inherit the mapping, so
    writes by ``set_epoch`` in the main process reach persistent workers; a spawned or
    forkserver worker receives the file descriptor when the dataset is pickled for it, not the
    bytes. It is not torch shared memory, so ``/dev/shm`` is never used, and it is reserved
    up front (``posix_fallocate``) with no copy, so peak memory is the pools' size once.
    """

    HEADER = 64  # epoch (int64), the two slots' pool numbers (int64), padding

    def __init__(self, pool_shape: tuple[int, ...], keep_in_memory: bool = True, fd: int | None = None) -> None:
        self.pool_shape, self.keep_in_memory = tuple(pool_shape), keep_in_memory
        pool_bytes = math.prod(self.pool_shape)
        fresh = fd is None
        self.fd = _reserve(self.HEADER + pool_bytes, keep_in_memory, self.pool_shape) if fresh else fd
        weakref.finalize(self, os.close, self.fd)  # the mapping keeps its own reference
        self._map = mmap.mmap(self.fd, self.HEADER + pool_bytes)
        self.epoch = torch.frombuffer(self._map, dtype=torch.int64, count=1).reshape(())
        self.slot_pools = torch.frombuffer(self._map, dtype=torch.int64, count=2, offset=8)
        self.pools = (torch.frombuffer(self._map, dtype=torch.uint8, count=pool_bytes, offset=self.HEADER)
                      .view(self.pool_shape) if pool_bytes else torch.empty(self.pool_shape, dtype=torch.uint8))
        if fresh:
            self.epoch.fill_(-1)
            self.slot_pools.fill_(-1)

    def __reduce__(self):
        # Pickled for a spawned worker: the descriptor travels (multiprocessing passes it to the
        # child), the bytes stay where they are.
        from multiprocessing.reduction import DupFd

        return _attach_pools, (self.pool_shape, self.keep_in_memory, DupFd(self.fd))


def _attach_pools(pool_shape: tuple[int, ...], keep_in_memory: bool, dup_fd: Any) -> SharedPools:
    return SharedPools(pool_shape, keep_in_memory, fd=dup_fd.detach())


def _reserve(nbytes: int, keep_in_memory: bool, pool_shape: tuple[int, ...]) -> int:
    """A file descriptor of ``nbytes`` reserved now, so a shortfall is a clear error here rather
    than a crash (SIGBUS, the OOM killer) when a page is first written."""
    in_memory = keep_in_memory and hasattr(os, "memfd_create")
    where = "memory" if in_memory else f"a temporary file in {tempfile.gettempdir()}"
    fd = -1
    try:
        if in_memory:
            fd = os.memfd_create("synthaug-pools", os.MFD_CLOEXEC)
        else:
            fd, path = tempfile.mkstemp(prefix="synthaug-pools-")
            os.unlink(path)  # freed with the last descriptor, even after a crash
        os.ftruncate(fd, nbytes)
        _preallocate(fd, nbytes)
    except OSError as err:
        if fd >= 0:
            os.close(fd)
        _, n, c, h, w = pool_shape
        advice = "pass keep_in_memory=False to keep them in a temporary file on disk" if in_memory else \
            "free disk space or point TMPDIR at a larger disk"
        reason = err.strerror or errno.errorcode.get(err.errno, str(err))
        raise SynthaugError(f"cannot reserve {nbytes / 2**20:.1f} MB for the synthetic pools (2 epochs x {n} "
                            f"items of {c}x{h}x{w} uint8) in {where}: {reason}; ask for fewer synthetic "
                            f"items (ratio, per_class) or {advice}") from None
    return fd


def _preallocate(fd: int, nbytes: int) -> None:
    """Reserve the pages now where the system can (memory or disk space); where it cannot
    reserve in advance (no posix_fallocate, a filesystem without it), pages come on first write."""
    if not hasattr(os, "posix_fallocate"):
        return
    try:
        os.posix_fallocate(fd, 0, nbytes)
    except OSError as err:
        if err.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
            raise
