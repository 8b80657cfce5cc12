"""``SyntheticDataset``: a real map-style dataset plus synthetic items of chosen classes."""

from __future__ import annotations

import errno
import math
import mmap
import os
import sys
import tempfile
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..data.allocation import DEFAULT_RATIO, repeated_items, short_names, synthetic_counts
from ..data.sources import dataset_item, dataset_length
from ..errors import SynthaugError
from ..models.registry import list_models
from ..runtime.load import load
from ..runtime.sampler import Sampler
from ..seeding import derive
from ..train.cache import cached_fit
from .dose_check import checked_counts
from .formats import FORMATS, ItemFormat, LabelFormat


class SyntheticDataset(Dataset):
    """Real items first, then synthetic ones, in the real items' own raw format.

    ``len(ds) == len(real) + num_synthetic + num_repeated`` and stays fixed (``num_repeated``,
    real images repeated to balance the classes, is 0 unless the recipe's own check chose them
    for ``balance=True``, see ``check_dose``). Synthetic item ``j`` has a fixed
    class (classes are laid out in blocks); its image is regenerated every epoch (every
    ``refresh_every`` epochs) and is a pure function of ``(seed, epoch // refresh_every, j)``;
    its label comes in the real labels' own type (an int, a numpy integer, or a tensor like
    ``TensorDataset``'s), so default collation stacks both alike.
    The epoch's images are generated in batches of ``generate_batch`` (on the sampler's device,
    e.g. the GPU) into one CPU pool that DataLoader workers (fork, spawn or forkserver, persistent
    or not) share with the main process without copies: forked workers inherit the mapping,
    spawned ones receive its file descriptor. Workers never run the generator. The pool is a
    memfd, not ``/dev/shm``, so a small ``--shm-size`` (Docker's 64 MB) does not limit it.
    Call :meth:`set_epoch` at the start of every epoch, like
    ``DistributedSampler.set_epoch``; every rank builds the same pool, so a
    ``DistributedSampler`` hands each synthetic item to exactly one rank.

    While an epoch runs, the next epoch's pool is generated in a background thread
    (``prefetch=True``), so ``set_epoch`` usually finds it ready.

    Memory: two pools (current and next epoch) of ``num_synthetic * C * H * W`` bytes each
    (uint8), e.g. 2 x 2.5 MB for 40,000 digits at 8x8, 2 x 123 MB for 40,000 RGB images at
    32x32, reserved at construction (a shortfall fails there, with the size) and never copied;
    generation needs one batch of float32 images on the sampler's device at a time.
    ``keep_in_memory=False`` keeps the pools in an unlinked temporary file (in ``TMPDIR``)
    instead, which the operating system pages to and from disk.

    Args:
        real: map-style dataset of ``(image, label)``; images as HWC/HW numpy arrays, CHW
            tensors or PIL images (uint8, or float in [0, 1]).
        generator: what makes the synthetic images, one of

            - a :class:`~synthaug.Sampler` whose classes are the dataset's;
            - a path to a run directory, ``.safetensors`` or ``.onnx`` file (:func:`synthaug.load`);
            - a registered family name (:func:`synthaug.list_models`, e.g. ``"dcgan"``): a generator
              of that family is fitted on ``real`` (and ``unlabeled``) on first use, with fit's
              progress bar on stderr, and cached under ``~/.cache/synthaug/fits/`` (or
              ``$SYNTHAUG_CACHE``, ``$XDG_CACHE_HOME/synthaug``, ``cache_dir``) keyed by the data's
              fingerprint and the settings; the next run with the same data and settings reuses it
              (see :mod:`synthaug.train.cache`). The fit's seed is ``seed``. Its images are resized
              to the real size where the family fits at another one (``resize`` is implied).

            A string that names an existing file or folder is a path, even if it is also a family
            name (``generator="./dcgan"`` to mean a folder, when in doubt).
        sampler: the name this argument had before ``generator`` (give one of the two).
        unlabeled: more real images without labels for the fitted generator to learn from (see
            :func:`synthaug.fit`); only with ``generator=<family name>``.
        fit_steps: training steps of the fitted generator (default: fit's, 3000); only with a family name.
        cache_dir: the cache folder for a family name's fitted generators (default above).
        progress: show the progress bar of a fit on first use.
        ratio: synthetic items as a fraction of ``len(real)``, split over the chosen classes in
            proportion to their real counts. When none of ``ratio``, ``per_class`` and ``balance``
            is given: ``ratio=DEFAULT_RATIO``.
        per_class: synthetic items per chosen class: one int, or ``{class: count}``.
        classes: which classes get synthetic items (indices or names); default all. Required when
            the real dataset has no ``classes`` attribute and its labels span a different number
            of classes than the generator's (its labels are taken as the generator's indices).
        balance: fill every chosen class up to the largest class's real count.
        transform: applied to real and synthetic images alike; an albumentations transform is
            called as ``transform(image=img, label=y)["image"]``, anything else as ``transform(img)``.
        format: ``"auto"`` (from the first real item) or one of numpy, tensor, pil.
        pixel_max: white level of integer images (default: the card's, e.g. 16 for digits).
        resize: resize synthetic images to the real images' size instead of failing.
        labels: the real labels, if the dataset cannot give them cheaply (``targets``/``labels``
            attributes are used when present; otherwise the dataset is read once).
        return_is_synthetic: items become ``(image, label, is_synthetic)``.
        keep_in_memory: ``False`` to hold the pools in a temporary file instead of memory.
        refresh_every: generate new synthetic images every this many epochs (default 1: every
            epoch). Where generating costs as much as loading real items (a CPU generator beside
            decoded image files), ``k`` epochs share one pool and the generation cost per epoch
            falls k-fold, at the price of seeing each synthetic image k times.
        check_dose: with a generator fitted on first use (a family name), first measure the
            synthetic items asked for on validation splits of ``real`` (3 paired seeds, see
            :mod:`synthaug.augment.dose_check`); where they do not raise balanced accuracy, use
            none and say so on stderr. With ``balance=True`` they must also beat class-balanced
            resampling; where resampling wins, the classes are balanced with repeated real images
            instead (items ``len(real) + num_synthetic`` onwards, :attr:`num_repeated`). The
            record is :attr:`dose_check`, cached with the generator. ``False`` skips the check.

    Example:
        >>> import numpy as np, torch
        >>> from synthaug.models import create_generator
        >>> from synthaug.card import GeneratorCard
        >>> from synthaug import TorchSampler
        >>> g = create_generator("dcgan", {"g_width": 8}, (1, 8, 8), 2)
        >>> card = GeneratorCard("dcgan", {"g_width": 8}, [1, 8, 8], 2, ["a", "b"], g.noise_spec(),
        ...                      {"range": [0, 1], "pixel_max": 255})
        >>> real = [(np.zeros((8, 8), np.uint8), i % 2) for i in range(10)]
        >>> ds = SyntheticDataset(real, TorchSampler(g, card), ratio=0.5, return_is_synthetic=True)
        >>> len(ds), ds[12][0].shape, ds[12][0].dtype, ds[12][2]
        (15, (8, 8), dtype('uint8'), True)

    Fitting on first use (minutes at the default 3000 steps, so not run here): a few labelled
    images plus an unlabelled pool, one line, and the next run finds the generator cached:

    .. code-block:: python

        mixed = SyntheticDataset(train_ds, generator="dcgan", unlabeled=unlabeled_ds)
    """

    def __init__(self, real: Dataset, generator: Sampler | str | os.PathLike | None = None, *,
                 sampler: Sampler | str | os.PathLike | None = None, unlabeled: Any = None,
                 fit_steps: int | None = None, cache_dir: str | os.PathLike | None = None, progress: bool = True,
                 ratio: float | None = None,
                 per_class: int | Mapping[Any, int] | None = None, classes: Sequence[Any] | None = None,
                 balance: bool = False, transform: Callable | None = None, format: str = "auto",
                 pixel_max: int | None = None, resize: bool = False, labels: Sequence[int] | None = None,
                 seed: int = 0, return_is_synthetic: bool = False, generate_batch: int = 1024,
                 prefetch: bool = True, keep_in_memory: bool = True, refresh_every: int = 1,
                 check_dose: bool = True) -> None:
        self.real, self.transform, self.seed = real, transform, int(seed)
        if isinstance(refresh_every, bool) or not isinstance(refresh_every, int) or refresh_every < 1:
            raise SynthaugError(f"refresh_every: expected a whole number of epochs >= 1, got {refresh_every!r}")
        self.refresh_every = refresh_every
        self.return_is_synthetic = return_is_synthetic
        self.generate_batch = generate_batch
        first = _first_item(real)
        self.format = ItemFormat.detect(first[0])
        if not isinstance(check_dose, bool):
            raise SynthaugError(f"check_dose: expected True or False, got {check_dose!r}")
        sampler, fitted = _resolve_generator(
            real, generator, sampler, {"unlabeled": unlabeled, "fit_steps": fit_steps, "cache_dir": cache_dir},
            seed=self.seed, progress=progress, channels=self.format.shape_chw[0])
        resize = resize or fitted is not None  # fitted on these images, at the nearest size the family makes
        card = sampler.card
        self.class_names = list(card.class_names)
        self.pixel_max = int(pixel_max or card.pixel_max)
        if format != "auto":
            if format not in FORMATS:
                raise SynthaugError(f"format: expected auto or one of {', '.join(FORMATS)}, got {format!r}")
            self.format = ItemFormat(format, "uint8" if format != "pil" else ("L" if card.image_shape[0] == 1 else "RGB"),
                                     format == "numpy", False, self.format.shape_chw)
        self.resize = _check_shapes(tuple(card.image_shape), self.format.shape_chw, resize)
        self.label_format = LabelFormat.detect(first[1])
        self._check_class_names(real)
        real_labels = _real_labels(real, labels, self.class_names)
        if classes is None and not isinstance(per_class, Mapping):
            _check_class_count(real, real_labels, self.class_names)
        self.real_counts = torch.bincount(real_labels, minlength=card.num_classes)
        self._real_item_labels = real_labels  # per real item, for class_balanced_weights
        counts = synthetic_counts(self.real_counts, ratio, per_class, classes, balance, self.class_names)
        #: What the recipe's own check measured (fit on first use with check_dose), else None.
        self.dose_check: dict[str, Any] | None = None
        #: Real item indices repeated after the synthetic items to balance the classes.
        self.repeated_real = torch.empty(0, dtype=torch.int64)
        if fitted is not None and check_dose and int(counts.sum()) > 0:
            counts, repeats, self.dose_check = checked_counts(fitted, counts, against_resampling=balance)
            self.repeated_real = repeated_items(real_labels, repeats, self.seed)
        self.synthetic_labels = torch.repeat_interleave(torch.arange(len(counts)), counts)
        self.synthetic_counts = counts
        n = len(self.synthetic_labels)
        # Shared with DataLoader workers (forked, spawned or persistent): the pools that
        # set_epoch() fills and the current epoch. Two slots: one serves the current epoch while
        # the next epoch's pool is generated into the other in the background.
        self._memory = SharedPools((2, n, *self.format.shape_chw), keep_in_memory)
        self.sampler: Sampler | None = sampler
        self.prefetch = prefetch
        self._prefetcher: _Prefetcher | None = None
        self.set_epoch(0)

    def class_balanced_weights(self) -> torch.Tensor:
        """Per item (real, then synthetic), 1 / the number of items of its class: with
        ``torch.utils.data.WeightedRandomSampler(ds.class_balanced_weights(), len(ds))`` every
        class is drawn alike (class-balanced resampling, the long-tail baseline).

        Example:
            >>> import torch
            >>> from synthaug import TorchSampler
            >>> from synthaug.card import GeneratorCard
            >>> from synthaug.models import create_generator
            >>> g = create_generator("dcgan", {"g_width": 8}, (1, 8, 8), 2)
            >>> card = GeneratorCard("dcgan", {}, [1, 8, 8], 2, ["a", "b"], g.noise_spec(), {"range": [0, 1]})
            >>> real = [(torch.zeros(1, 8, 8), 0)] * 3 + [(torch.zeros(1, 8, 8), 1)]
            >>> SyntheticDataset(real, TorchSampler(g, card), per_class=0).class_balanced_weights().tolist()
            [0.3333333432674408, 0.3333333432674408, 0.3333333432674408, 1.0]
        """
        labels = torch.cat([self._real_item_labels, self.synthetic_labels, self._real_item_labels[self.repeated_real]])
        counts = torch.bincount(labels, minlength=len(self.class_names)).float()
        return 1.0 / counts[labels]

    @property
    def num_real(self) -> int:
        return len(self.real)

    @property
    def num_synthetic(self) -> int:
        return len(self.synthetic_labels)

    @property
    def num_repeated(self) -> int:
        return len(self.repeated_real)

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    @property
    def _pools(self) -> torch.Tensor:
        return self._memory.pools

    @property
    def _slot_pools(self) -> torch.Tensor:
        return self._memory.slot_pools

    @property
    def _epoch(self) -> torch.Tensor:
        return self._memory.epoch

    def __len__(self) -> int:
        return self.num_real + self.num_synthetic + self.num_repeated

    def __getstate__(self) -> dict:
        # Workers read the shared pools; they never need (or should touch) the generator.
        self._finish_prefetch()
        state = self.__dict__.copy()
        state["sampler"] = None
        state["_prefetcher"] = None
        return state

    def set_epoch(self, epoch: int) -> None:
        """Make ``epoch``'s pool current (generating it here, on the sampler's device, unless the
        background prefetch already did), then start generating the next pool. With
        ``refresh_every=k`` epochs ``e`` share pool ``e // k``."""
        if self.sampler is None:
            raise SynthaugError("set_epoch() must be called on the dataset in the main process, "
                                "not on a copy inside a DataLoader worker")
        self._finish_prefetch()
        pool = epoch // self.refresh_every
        if int(self._epoch) != epoch:
            slots = self._slot_pools.tolist()
            if pool not in slots:
                # Fill the slot that is not serving the current pool.
                slot = 1 if slots[0] == self._current_pool() else 0
                self._generate(pool, slot)
            self._epoch.fill_(epoch)
        if self.prefetch and self.num_synthetic and pool + 1 not in self._slot_pools.tolist():
            slot = 1 - self._slot_pools.tolist().index(pool)
            self._prefetcher = _Prefetcher(self, pool + 1, slot)

    def _current_pool(self) -> int:
        # Before the first set_epoch the epoch is -1, and -1 // k is -1: no slot's pool.
        return int(self._epoch) // self.refresh_every

    def _generate(self, pool: int, slot: int) -> None:
        self._slot_pools[slot] = -1  # not servable while being written
        g = torch.Generator().manual_seed(derive(self.seed, pool))
        for start in range(0, self.num_synthetic, self.generate_batch):
            labels = self.synthetic_labels[start:start + self.generate_batch]
            images = self.sampler.sample(labels, generator=g)
            if self.resize:
                images = F.interpolate(images, size=self.format.shape_chw[1:], mode="bilinear",
                                       antialias=True, align_corners=False)
            pixels = (images.clamp(0, 1) * self.pixel_max).round().to(torch.uint8)
            self._pools[slot, start:start + len(labels)].copy_(pixels.cpu())
        self._slot_pools[slot] = pool

    def _finish_prefetch(self) -> None:
        if self._prefetcher is not None:
            prefetcher, self._prefetcher = self._prefetcher, None
            prefetcher.join()

    def __getitem__(self, index: int):
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)}")
        if index < self.num_real or index >= self.num_real + self.num_synthetic:
            if index >= self.num_real:
                index = int(self.repeated_real[index - self.num_real - self.num_synthetic])
            image, label = self.real[index]
            synthetic = False
        else:
            j = index - self.num_real
            slot = 0 if int(self._slot_pools[0]) == self._current_pool() else 1
            image = self.format.convert(self._pools[slot, j], self.pixel_max)
            label = self.label_format.convert(int(self.synthetic_labels[j]))
            synthetic = True
        if self.transform is not None:
            image = _apply(self.transform, image, label)
        return (image, label, synthetic) if self.return_is_synthetic else (image, label)

    def _check_class_names(self, real: Dataset) -> None:
        names = getattr(real, "classes", None)
        if names is not None and [str(n) for n in names] != self.class_names:
            raise SynthaugError(f"the dataset's classes {short_names(names)} differ from the generator's "
                                f"{short_names(self.class_names)}: expected the same classes in the same order")


def _resolve_generator(real: Dataset, generator: Any, sampler: Any, fit_options: dict[str, Any], *, seed: int,
                       progress: bool, channels: int) -> tuple[Sampler, Any]:
    """The sampler ``generator`` (or its old name ``sampler``) stands for, and the
    :class:`~synthaug.train.cache.CachedFit` when it was fitted here on ``real`` (a family
    name), else None."""
    if (generator is None) == (sampler is None):
        got = "both" if generator is not None else "neither"
        raise SynthaugError(f"expected exactly one of generator= and its old name sampler=, got {got}")
    given = generator if generator is not None else sampler
    # An existing path wins over a family name of the same spelling: it is what the user has on disk.
    if isinstance(given, str) and given in list_models() and not os.path.exists(given):

        fitted = cached_fit(real, given, unlabeled=fit_options["unlabeled"], steps=fit_options["fit_steps"],
                            seed=seed, cache_dir=fit_options["cache_dir"], progress=progress, channels=channels)
        return fitted.sampler, fitted
    fit_only = [name for name, value in fit_options.items() if value is not None]
    if fit_only:
        what = f"the path {os.fspath(given)!r}" if isinstance(given, (str, os.PathLike)) else \
            f"a ready {type(given).__name__}"
        verb = "applies" if len(fit_only) == 1 else "apply"
        raise SynthaugError(f"{', '.join(fit_only)}: {verb} only to a generator fitted on first use, expected "
                            f"generator=<family name> ({', '.join(list_models())}), got {what}")
    return _ready_sampler(given), None


def _ready_sampler(given: Any) -> Sampler:
    """A sampler as it is, or the one a run directory, ``.safetensors`` or ``.onnx`` path holds."""
    if isinstance(given, (str, os.PathLike)):
        if not os.path.exists(given):
            raise SynthaugError(f"generator: expected a registered family ({', '.join(list_models())}) or an "
                                f"existing run directory, .safetensors or .onnx file, got {os.fspath(given)!r}")
        return load(given)
    if not (hasattr(given, "card") and callable(getattr(given, "sample", None))):
        raise SynthaugError(f"generator: expected a Sampler, a path to a run directory, .safetensors or .onnx "
                            f"file, or a family name, got {type(given).__name__}")
    return given


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


class _Prefetcher:
    """Generates one epoch's pool in a background thread (torch releases the GIL while it
    computes, so this overlaps with the training loop or with DataLoader workers).

    The thread is not a daemon: the interpreter waits for it at exit, because a thread killed
    inside a torch op aborts the process. No process may fork while the thread runs (a forked child would inherit a half-used thread
    pool): a fork handler waits for it, so non-persistent forked workers simply get no overlap.
    """

    def __init__(self, dataset: SyntheticDataset, epoch: int, slot: int) -> None:
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(dataset, epoch, slot), daemon=False,
                                       name=f"synthaug-prefetch-{epoch}")
        _install_fork_hook()
        _live_prefetchers.add(self)
        self.thread.start()

    def _run(self, dataset: SyntheticDataset, epoch: int, slot: int) -> None:
        try:
            dataset._generate(epoch, slot)
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


def _first_item(real: Dataset) -> tuple[Any, int]:
    dataset_length(real)
    return dataset_item(real, 0)


def _real_labels(real: Dataset, labels: Sequence[int] | None, class_names: Sequence[str]) -> torch.Tensor:
    if labels is None:
        labels = getattr(real, "targets", None)
    if labels is None:
        labels = getattr(real, "labels", None)
    if labels is None:
        labels = [real[i][1] for i in range(len(real))]
    k = len(class_names)
    indices = []
    for y in labels:
        index = _whole_number(y)
        if index is None:
            raise SynthaugError(f"the real dataset has label {_short_repr(y)}: expected integer class indices "
                                f"0..{k - 1} of the generator's classes {short_names(class_names)}")
        indices.append(index)
    t = torch.as_tensor(indices, dtype=torch.int64)
    if len(t) != len(real):
        raise SynthaugError(f"expected one label per real item ({len(real)}), got {len(t)}")
    bad = t[(t < 0) | (t >= k)]
    if len(bad):
        raise SynthaugError(f"the real dataset has label {int(bad[0])}, outside the generator's classes "
                            f"0..{k - 1} {short_names(class_names)}")
    return t


def _whole_number(y: Any) -> int | None:
    """A label as an int (a Python or numpy integer, a one-element integer tensor, a float with
    no fraction); None for anything else (a class name, a fraction, a vector)."""
    if isinstance(y, (str, bytes)):
        return None
    try:
        value = float(y)
    except (TypeError, ValueError, RuntimeError):
        return None
    return int(value) if value.is_integer() else None


def _short_repr(value: Any, limit: int = 40) -> str:
    text = repr(value).replace("\n", " ")
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _check_class_count(real: Dataset, real_labels: torch.Tensor, class_names: Sequence[str]) -> None:
    """Without class names to compare, the labels must span the generator's classes: a 10-class
    generator over 5-class data would otherwise add items labelled 5..9, classes the data lacks."""
    if getattr(real, "classes", None) is not None:
        return  # names compared by _check_class_names
    spanned = int(real_labels.max()) + 1 if len(real_labels) else 0
    if spanned != len(class_names):
        raise SynthaugError(f"the real labels span {spanned} classes (0..{spanned - 1}) but the generator has "
                            f"{len(class_names)} classes {short_names(class_names)}: pass classes=[...] naming the "
                            f"generator classes that get synthetic items, or give the dataset a classes "
                            f"attribute with the generator's class names")


def _check_shapes(card_shape: tuple[int, int, int], real_shape: tuple[int, int, int], resize: bool) -> bool:
    if card_shape == real_shape:
        return False
    if card_shape[0] != real_shape[0]:
        raise SynthaugError(f"the generator makes {card_shape[0]}-channel images but the real images have "
                            f"{real_shape[0]} channels (expected the same)")
    if not resize:
        raise SynthaugError(f"the generator makes {card_shape[1]}x{card_shape[2]} images but the real ones are "
                            f"{real_shape[1]}x{real_shape[2]}: pass resize=True to resize synthetic images")
    return True


def _apply(transform: Callable, image: Any, label: int) -> Any:
    if is_albumentations(transform):
        return transform(image=image, label=label)["image"]
    return transform(image)


def is_albumentations(transform: Any) -> bool:
    """Whether ``transform`` takes albumentations' keyword call (``image=...``)."""
    if "albumentations" not in sys.modules:  # whoever built one has imported it already
        return False
    import albumentations as A

    return isinstance(transform, (A.BasicTransform, A.BaseCompose))
