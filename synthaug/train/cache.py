"""Fit on first use: a generator fitted on the user's data the first time it is asked for, then reused.

``SyntheticDataset(train_ds, generator="dcgan", unlabeled=pool)`` comes here. The fitted run lives
in ``<root>/fits/<family>-<key>``: ``root`` is ``cache_dir``, else ``$SYNTHAUG_CACHE``, else
``$XDG_CACHE_HOME/synthaug``, else ``~/.cache/synthaug``; ``key`` hashes everything that decides
the fit (family, steps, seed, pseudo-label threshold, the fingerprints of the labelled and the
unlabelled images, synthaug's version), so other data or settings get another run and the same
ones find theirs. A run that was killed part-way is continued from its last checkpoint (or
fitted again when it cannot be), and processes asking for the same run at once (DDP ranks)
wait for the one fitting it instead of fitting it twice.

``SyntheticDataset`` (in :mod:`synthaug.augment`, a layer above) calls down into it; the dose
check of ``balance=True`` (:mod:`synthaug.augment.dose_check`) keeps its records beside the fits.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._version import __version__
from ..card import CardError
from ..data import ImageData, load_data
from ..data.unlabeled import check_unlabeled_apart, load_unlabeled
from ..errors import SynthaugError, first_line
from ..layout import CHECKPOINT_FILE
from ..models.registry import get_family
from ..run import Run
from ..runtime.sampler import Sampler
from ..validation import is_int
from .fit import DEFAULT_STEPS, default_steps, fit
from .lock import open_shared_lock_file, take_lock
from .pseudo_labels import DEFAULT_THRESHOLD, check_threshold
from .rundir import check_data_outside_run, fit_named_entries

log = logging.getLogger("synthaug")

#: Sub-folders of the cache root: the fitted runs, and what the dose checks measured with them.
FITS_FOLDER, CHECKS_FOLDER = "fits", "checks"


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where fitted generators are cached: ``cache_dir``, else ``$SYNTHAUG_CACHE``, else
    ``$XDG_CACHE_HOME/synthaug``, else ``~/.cache/synthaug`` (empty variables count as unset)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get("SYNTHAUG_CACHE"):
        return Path(os.environ["SYNTHAUG_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "synthaug"
    return Path.home() / ".cache" / "synthaug"


def fit_directory(data: ImageData, family: str, *, unlabeled_fingerprint: str | None = None,
                  steps: int | None = None, seed: int = 0, pseudo_labels: float | None = DEFAULT_THRESHOLD,
                  cache_dir: str | os.PathLike | None = None) -> Path:
    """The run directory of these settings on ``data``: ``<root>/fits/<family>-<key>``.

    Example:
        >>> data = load_data("digits:train")
        >>> a = fit_directory(data, "gan", steps=20, cache_dir="/cache")
        >>> a.parent, a.name.startswith("gan-"), len(a.name)
        (PosixPath('/cache/fits'), True, 20)
        >>> a == fit_directory(data, "gan", steps=20, seed=1, cache_dir="/cache")
        False
    """
    steps = _check_steps(steps)
    settings = {
        "family": get_family(family).name,
        "steps": steps,
        "seed": _check_seed(seed),
        # Without unlabelled images fit ignores the threshold: the same fit, the same key.
        "pseudo_labels": check_threshold(pseudo_labels) if unlabeled_fingerprint is not None else None,
        "data": data.fingerprint(),
        "unlabeled": unlabeled_fingerprint,
        "synthaug": __version__,
    }
    canonical = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    key = hashlib.sha256(canonical.encode()).hexdigest()[:16]
    return cache_root(cache_dir) / FITS_FOLDER / f"{family}-{key}"


def cached_sampler(real: Any, family: str, *, unlabeled: Any = None, steps: int | None = None, seed: int = 0,
                   cache_dir: str | os.PathLike | None = None, progress: bool = True,
                   pseudo_labels: float | None = DEFAULT_THRESHOLD, channels: int | None = None) -> Sampler:
    """A sampler of a ``family`` generator fitted on ``real`` (and ``unlabeled``): see
    :func:`cached_fit`, whose first result this is.

    Example (fits in about a second; a second call finds the run):
        >>> import tempfile
        >>> root = tempfile.mkdtemp()
        >>> s = cached_sampler("digits:train", "gan", steps=2, cache_dir=root, progress=False)
        >>> s.sample([0, 1], seed=0).shape
        torch.Size([2, 1, 8, 8])
        >>> t = cached_sampler("digits:train", "gan", steps=2, cache_dir=root, progress=False)
        >>> bool((s.sample([0, 1], seed=0) == t.sample([0, 1], seed=0)).all())
        True
    """
    return cached_fit(real, family, unlabeled=unlabeled, steps=steps, seed=seed, cache_dir=cache_dir,
                      progress=progress, pseudo_labels=pseudo_labels, channels=channels).sampler


@dataclass
class CachedFit:
    """What :func:`cached_fit` found or fitted: the sampler, the labelled images it was fitted on
    (at the generator's shape) and its run directory in the cache."""

    sampler: Sampler
    data: ImageData
    directory: Path


def cached_fit(real: Any, family: str, *, unlabeled: Any = None, steps: int | None = None, seed: int = 0,
               cache_dir: str | os.PathLike | None = None, progress: bool = True,
               pseudo_labels: float | None = DEFAULT_THRESHOLD, channels: int | None = None) -> CachedFit:
    """A sampler of a ``family`` generator fitted on ``real`` (and ``unlabeled``), fitted now
    unless an earlier call with the same data and settings cached it.

    Args:
        real: the labelled images, anything :func:`synthaug.load_data` reads (a map-style
            Dataset of ``(image, label)``, an ImageData, an image folder, an ``.npz``, ``"digits"``).
        family: a registered family (:func:`synthaug.list_models`).
        unlabeled / pseudo_labels: as :func:`synthaug.fit`'s.
        steps: training steps (default: fit's, see :func:`synthaug.train.fit.default_steps`).
        seed: fit's seed.
        cache_dir: the cache root (default: see :func:`cache_root`).
        progress: show fit's progress bar (stderr).
        channels: read the images with this many channels (default: 1 for greyscale data, else 3).
    """
    spec = get_family(family)  # an unknown family fails here, before any data is read
    name = spec.name
    # Read once here: the fingerprint keys the cache, and fit gets these very images.
    data = load_data(real, channels=channels, supported_sizes=spec.generator_cls.image_sizes)
    pool = None
    if unlabeled is not None:
        check_unlabeled_apart(real, unlabeled)  # fit sees an ImageData and could no longer check
        pool = load_unlabeled(unlabeled, data.image_shape)  # read once, like the labelled images
    steps = _check_steps(steps) if steps is not None else default_steps(data.image_shape[1], len(data))
    directory = fit_directory(data, name, unlabeled_fingerprint=pool.fingerprint() if pool is not None else None,
                              steps=steps, seed=seed, pseudo_labels=pseudo_labels, cache_dir=cache_dir)
    check_data_outside_run(directory.resolve(), [real, unlabeled])
    options = {"model": name, "steps": steps, "seed": seed, "image_size": data.image_shape[1],
               "channels": data.image_shape[0], "progress": progress}
    if pool is not None:  # fit refuses a threshold given without unlabelled images
        options.update(unlabeled=pool, pseudo_labels=pseudo_labels)
    with _exclusive(directory):
        sampler = None
        if _steps_done(directory) == steps:
            sampler = _readable_sampler(directory)
            if sampler is not None:
                log.info("reusing the generator fitted on first use: %s", directory)
                return CachedFit(sampler, data, directory)
        elif (directory / CHECKPOINT_FILE).is_file():
            sampler = _resume(data, directory, options)
        if sampler is None:
            sampler = _fit_afresh(data, directory, options)
        return CachedFit(sampler, data, directory)


def _readable_sampler(directory: Path) -> Sampler | None:
    """The sampler of the run in ``directory``, or None (with a warning) when it cannot be loaded:
    a damaged file in the cache is synthaug's to replace, not the user's problem."""
    try:
        return Run(directory).sampler()
    except (SynthaugError, CardError, OSError) as err:
        log.warning("the cached generator in %s cannot be loaded (%s): fitting it again from scratch", directory,
                    first_line(err))
        return None


def _resume(data: ImageData, directory: Path, options: dict[str, Any]) -> Sampler | None:
    """Continue the unfinished run in ``directory`` (a fit that was killed); None when it cannot be
    continued or its result cannot be loaded."""
    done = _steps_done(directory)  # None when the card cannot be read (the checkpoint may still be good)
    if done is None:
        log.info("continuing the unfinished generator fit (step unknown of %d): %s", options["steps"], directory)
    else:
        log.info("continuing the generator fit that stopped at step %d of %d: %s", done, options["steps"], directory)
    try:
        fit(data, out=directory, resume=True, **options)
    except SynthaugError as err:  # a damaged checkpoint, or one of another synthaug
        log.warning("cannot continue the unfinished fit in %s (%s): fitting it again", directory, first_line(err))
        return None
    return _readable_sampler(directory)


def _fit_afresh(data: ImageData, directory: Path, options: dict[str, Any]) -> Sampler:
    """Fit the run in ``directory`` from scratch, first removing what a fit left there (this
    folder is the cache's own, named by the key; a damaged file in it is ours, whatever its
    content says). Anything else in it is refused, not deleted."""
    if directory.is_dir():
        ours, foreign = fit_named_entries(directory)
        if foreign:
            raise SynthaugError(f"the synthaug cache folder {directory} holds files fit does not write "
                                f"({', '.join(foreign[:5])}): expected only a fit's files there; move them out")
        for entry in ours:
            entry.unlink()
    log.info("fitting a %s generator on first use (%d steps), cached in %s", options["model"], options["steps"],
             directory)
    return fit(data, out=directory, **options).sampler()


def _steps_done(directory: Path) -> int | None:
    """The steps recorded by the run in ``directory``; None when there is no readable run."""
    try:
        return Run(directory).card.training.get("steps")
    except (SynthaugError, CardError, OSError):
        return None


#: How long a process waits for another one fitting the same run before giving up (seconds): longer
#: than any fit this cache makes by default, so a live fit is waited for and a stuck one is said.
LOCK_WAIT_S = 6 * 3600.0


@contextlib.contextmanager
def _exclusive(directory: Path, wait_s: float | None = None) -> Iterator[None]:
    """Hold ``.<name>.lock`` beside ``directory``: one process checks and fits a run at a time,
    the others wait (at most ``wait_s``, default :data:`LOCK_WAIT_S`) and then find it fitted.
    The file stays (removing a lock file others may have opened would let two holders in); the
    kernel drops the lock if its holder dies. Any user of a shared cache can lock it
    (:func:`~synthaug.train.lock.open_shared_lock_file`)."""
    lock = directory.parent / f".{directory.name}.lock"
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        fd = open_shared_lock_file(lock)
    except OSError as err:
        raise SynthaugError(f"cannot write to the synthaug cache {directory.parent}: "
                            f"{err.strerror or errno.errorcode.get(err.errno, err)}; set SYNTHAUG_CACHE or "
                            f"cache_dir= to a writable folder") from None
    try:
        wait_s = LOCK_WAIT_S if wait_s is None else wait_s
        said = functools.partial(log.info, "waiting for another process fitting %s", directory)
        if not take_lock(fd, wait_s=wait_s, on_wait=said):
            raise SynthaugError(f"another process has been fitting {directory} for over {wait_s:g} s: expected "
                                f"it to finish; stop it, or pass another cache_dir=")
        yield
    finally:
        os.close(fd)  # releases the lock


def _check_steps(steps: Any) -> int:
    if steps is None:
        return DEFAULT_STEPS
    if not is_int(steps) or steps < 1:
        raise SynthaugError(f"fit_steps: expected a positive integer, got {steps!r}")
    return steps


def _check_seed(seed: Any) -> int:
    if not is_int(seed):
        raise SynthaugError(f"seed: expected an integer, got {seed!r}")
    return seed


__all__ = ["cached_sampler", "cached_fit", "CachedFit", "cache_root", "fit_directory"]
