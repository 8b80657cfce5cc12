"""The recipe checks itself: do the synthetic items asked for help a classifier on *this* data?

``SyntheticDataset(train_ds, generator="dcgan", ...)`` fits a generator on first use; before it
hands out synthetic items, :func:`check_dose` measures them on the user's own images. Per seed, a
stratified validation split (:data:`VAL_FRACTION` of each class, at least one image; a different
split per seed) is held out; one classifier trains on the rest, another on the rest with
synthetic rows in the share and class mix the dataset would give (``ratio``, ``per_class`` or
``balance=True``), both with classical augmentation and the same seed (paired). When the mean
paired change in balanced accuracy on the validation images is not above zero, the dataset uses
no synthetic items and says why on stderr: a long tail filled with samples of a generator that saw
six images of a class can cost more than it brings (measured: benchmarks/usefulness.py). With
``balance=True`` the synthetic items must also beat class-balanced resampling without them,
trained the same way; where that resampling wins instead, the dataset balances the classes with
repeated real images (:func:`fill`): class-balanced oversampling, what resampling gives in
expectation, instead of nothing.

The result is cached beside the fitted generator, keyed by the generator's run and the counts,
so a second construction with the same data and settings does not measure again. The generator
saw the validation images while fitting (it is fitted on all the labelled images): the check
favours synthetic items, so a "did not help" is a safe verdict and a "helped" an optimistic one.

Example:
    >>> from synthaug.data import load_data
    >>> data = load_data("digits:train").subset(torch.arange(0, 1347, 20))
    >>> check_counts_for_split(data.class_counts(), data.class_names)  # at least 2 per class: fine
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_write
from ..data import ImageData, stratified_split
from ..errors import SynthaugError
from ..metrics.classifier import balanced_accuracy, predict
from ..metrics.methods import Method, train_method
from ..metrics.stats import paired_gain
from ..runtime.sampler import Sampler
from ..train.cache import CHECKS_FOLDER, CachedFit
from .mix import SyntheticMix

log = logging.getLogger("synthaug")

#: Share of each class held out per seed; paired seeds; optimiser steps per classifier (as eval's arms).
VAL_FRACTION, CHECK_SEEDS, CHECK_STEPS = 0.2, 3, 400
_FORMAT = 1


def check_counts_for_split(counts: Sequence[int], class_names: Sequence[str]) -> None:
    """Every class needs two images: one to train on, one to validate on."""
    for name, n in zip(class_names, counts):
        if n < 2:
            raise SynthaugError(f"check_dose: class {name!r} has {n} image(s): the validation split needs at least 2 "
                                f"per class (1 to train, 1 to validate); pass check_dose=False to skip the check")


def check_dose(data: ImageData, sampler: Sampler, counts: torch.Tensor, *, seeds: int = CHECK_SEEDS,
               steps: int | None = None, cache_dir: Path | None = None, name: str = "check",
               against_resampling: bool = False) -> dict[str, Any]:
    """Measure ``counts`` synthetic items per class on ``data`` (see the module docstring);
    returns the record, with ``"use"`` True when they helped. ``steps``: optimiser steps per
    classifier (default :data:`CHECK_STEPS`). Read from / written to
    ``cache_dir/<name>-<key>.json`` (``key`` hashes the data, the counts and the settings).

    ``against_resampling`` (for ``balance=True``): also train with class-balanced resampling
    and no synthetic items, what a practitioner would do instead of filling the rare classes;
    the synthetic items are then used only when they beat both."""
    steps = CHECK_STEPS if steps is None else steps  # read here, so a shorter budget can be set for a session
    key = _key(data, counts, seeds, steps, against_resampling)
    cache = cache_dir / f"{name}-{key}.json" if cache_dir is not None else None
    if cache is not None:
        found = _read(cache, key)
        if found is not None:
            return found
    check_counts_for_split(data.class_counts(), data.class_names)
    total = int(counts.sum())
    dose = total / (total + len(data))
    weights = (counts.double() / max(total, 1)).tolist()
    x, y = data.as_float(), data.labels
    real, synthetic, resampled = [], [], []
    for seed in range(seeds):
        rest, val = stratified_split(y, VAL_FRACTION, seed)
        arms = [(real, Method(), None), (synthetic, Method(), SyntheticMix(sampler, p=dose, labels=weights, seed=seed))]
        if against_resampling:
            arms.append((resampled, Method(sampling="balanced"), None))
        for scores, method, mix in arms:
            model = train_method(x[rest], y[rest], data.num_classes, method, steps=steps, seed=seed, synthetic=mix)
            scores.append(balanced_accuracy(predict(model, x[val]), y[val], data.num_classes))
    gain = paired_gain(real, synthetic)
    use = gain["mean"] > 0
    extra: dict[str, Any] = {}
    if against_resampling:
        extra = {"resampling_gain": paired_gain(real, resampled), "over_resampling": paired_gain(resampled, synthetic)}
        use = use and extra["over_resampling"]["mean"] > 0
    record = {"format": _FORMAT, "key": key, "use": bool(use), "gain": gain, **extra, "dose": dose,
              "synthetic_items": total, "real_items": len(data), "seeds": seeds, "steps": steps,
              "val_fraction": VAL_FRACTION, "metric": "balanced_accuracy"}
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(cache, lambda tmp: tmp.write_text(json.dumps(record, indent=1)))
    return record


def fill(record: dict[str, Any]) -> str:
    """What the dataset's extra items should be after the check: ``"synthetic"`` (they helped),
    ``"real"`` (``balance=True`` only: class-balanced resampling beat both real images alone and
    the synthetic items, so the classes are balanced with repeated real images, which is that
    resampling in expectation) or ``"none"``."""
    if record["use"]:
        return "synthetic"
    if "resampling_gain" in record and record["resampling_gain"]["mean"] > 0:
        return "real"
    return "none"


def describe(record: dict[str, Any]) -> str:
    """One line for stderr."""
    change = f"{_points(record['gain'])} of balanced accuracy over {record['seeds']} paired seeds on validation " \
             f"splits of your data"
    if record["use"]:
        return f"SyntheticDataset: {record['synthetic_items']} synthetic items checked: {change}"
    if fill(record) == "real":
        return (f"SyntheticDataset: balancing the classes with {record['synthetic_items']} repeated real images "
                f"instead of synthetic ones: class-balanced resampling did better "
                f"({_points(record['resampling_gain'])} over real images alone, the synthetic items "
                f"{_points(record['gain'])}) over {record['seeds']} paired seeds on validation splits of your data; "
                f"pass check_dose=False to use the synthetic items anyway")
    return (f"SyntheticDataset: using no synthetic items: the {record['synthetic_items']} asked for changed a "
            f"classifier by {change}; pass check_dose=False to use them anyway")


def _points(g: dict[str, Any]) -> str:
    interval = f" (95% interval {g['low'] * 100:+.1f} to {g['high'] * 100:+.1f})" if g.get("low") is not None else ""
    return f"{g['mean'] * 100:+.1f} points{interval}"


def _key(data: ImageData, counts: torch.Tensor, seeds: int, steps: int, against_resampling: bool) -> str:
    text = json.dumps([data.fingerprint(), counts.tolist(), seeds, steps, VAL_FRACTION, _FORMAT, against_resampling])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _read(path: Path, key: str) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("key") != key or record.get("format") != _FORMAT:
        return None
    return record


__all__ = ["check_dose", "check_counts_for_split", "describe", "fill", "CHECK_SEEDS", "CHECK_STEPS", "VAL_FRACTION"]


def checked_counts(fitted: CachedFit, counts: torch.Tensor,
                   against_resampling: bool = False) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """``(synthetic, repeated_real, record)``: per class, how many synthetic items and how many
    repeated real images the dataset gets after the dose check
    (:mod:`synthaug.augment.dose_check`) on the data the generator was fitted on: ``counts``
    synthetic items where they helped; with ``against_resampling`` (``balance=True``), ``counts``
    repeated real images where class-balanced resampling did better; else neither. Says which
    on stderr."""
    record = check_dose(fitted.data, fitted.sampler, counts, cache_dir=fitted.directory.parent.parent / CHECKS_FOLDER,
                        name=fitted.directory.name, against_resampling=against_resampling)
    none = torch.zeros_like(counts)
    chosen = fill(record)
    if chosen == "synthetic":
        log.info("%s", describe(record))
        return counts, none, record
    log.warning("%s", describe(record))
    return none, (counts if chosen == "real" else none), record
