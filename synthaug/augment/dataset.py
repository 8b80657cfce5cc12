"""``SyntheticDataset``: a real map-style dataset plus synthetic items of chosen classes.

This module holds the dataset itself and the checks of the real items it wraps (labels, class
names, image shapes, the transform's call). What it is built from lives beside it: the pools
shared with DataLoader workers in :mod:`synthaug.augment.pools`, the background generation of
the next epoch's pool in :mod:`synthaug.augment.prefetch`, and what ``generator=`` stands for
(a sampler, a path, a family fitted on first use) in :mod:`synthaug.augment.resolve`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..data.allocation import repeated_items, short_names, synthetic_counts
from ..data.sources import dataset_item, dataset_length
from ..errors import SynthaugError
from ..runtime.sampler import Sampler
from ..seeding import derive
from ..validation import is_int
from .dose_check import checked_counts
from .formats import FORMATS, ItemFormat, LabelFormat
from .pools import SharedPools
from .prefetch import Prefetcher
from .resolve import resolve_generator

__all__ = ["SyntheticDataset", "is_albumentations"]


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
        if not is_int(refresh_every) or refresh_every < 1:
            raise SynthaugError(f"refresh_every: expected a whole number of epochs >= 1, got {refresh_every!r}")
        self.refresh_every = refresh_every
        self.return_is_synthetic = return_is_synthetic
        self.generate_batch = generate_batch
        first = _first_item(real)
        self.format = ItemFormat.detect(first[0])
        if not isinstance(check_dose, bool):
            raise SynthaugError(f"check_dose: expected True or False, got {check_dose!r}")
        sampler, fitted = resolve_generator(
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
        self._prefetcher: Prefetcher | None = None
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
            self._prefetcher = Prefetcher(self._generate, pool + 1, slot)

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
