"""The background generation of :class:`~synthaug.augment.dataset.SyntheticDataset`'s next pool.

:class:`Prefetcher` runs ``generate(pool, slot)`` (the dataset's ``_generate``) in a thread while
the current epoch trains; a fork handler, installed with the first one, makes any ``fork`` wait
for the live prefetch threads, so a forked DataLoader worker never inherits one half-way.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable

__all__ = ["Prefetcher"]


class Prefetcher:
    """Generates one pool (``generate(pool, slot)``) in a background thread (torch releases the
    GIL while it computes, so this overlaps with the training loop or with DataLoader workers).

    The thread is not a daemon: the interpreter waits for it at exit, because a thread killed
    inside a torch op aborts the process. No process may fork while the thread runs (a forked
    child would inherit a half-used thread pool): a fork handler waits for it, so non-persistent
    forked workers simply get no overlap.
    """

    def __init__(self, generate: Callable[[int, int], None], pool: int, slot: int) -> None:
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(generate, pool, slot), daemon=False,
                                       name=f"synthaug-prefetch-{pool}")
        _install_fork_hook()
        _live_prefetchers.add(self)
        self.thread.start()

    def _run(self, generate: Callable[[int, int], None], pool: int, slot: int) -> None:
        try:
            generate(pool, slot)
        except BaseException as err:  # surfaced by join() in the caller's thread
            self.error = err

    def join(self) -> None:
        self.thread.join()
        _live_prefetchers.discard(self)
        if self.error is not None:
            raise self.error


_live_prefetchers: weakref.WeakSet = weakref.WeakSet()


def _wait_for_prefetchers() -> None:
    for prefetcher in list(_live_prefetchers):
        prefetcher.thread.join()


_fork_hook_installed = False


def _install_fork_hook() -> None:
    global _fork_hook_installed
    if not _fork_hook_installed and hasattr(os, "register_at_fork"):
        os.register_at_fork(before=_wait_for_prefetchers)
        _fork_hook_installed = True
