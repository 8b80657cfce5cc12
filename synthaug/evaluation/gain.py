"""Downstream gain: does mixing synthetic samples into training make a classifier better?

For each fraction of the real training data and each seed, one classifier per dose is trained:
dose 0 is the baseline (real data with classical augmentation), dose ``p`` swaps a share ``p`` of
every batch for synthetic samples of the same classes with :class:`~synthaug.SyntheticMix`
(``mode="replace"``), the same module users put in their own loops. Every arm takes the same
optimiser steps, and a seed fixes everything an arm shares with the others (the data subset,
the batch order, the initial weights, the augmentation draws), so the arms of one seed differ
only by the synthetic rows and the gain is measured on paired differences.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ..augment import SyntheticMix
from ..data import ImageData, stratified_split
from ..metrics.classifier import balanced_accuracy, per_class_accuracy, predict
from ..metrics.methods import Method, train_method
from ..metrics.stats import mean_interval, paired_gain
from ..metrics.views import ClassicalAugment

__all__ = ["chain", "downstream_gain", "fraction_subset", "score", "summarise_fraction", "train_arm"]


def fraction_subset(train: ImageData, fraction: float, seed: int) -> ImageData:
    """``fraction`` of each class of ``train``, chosen by ``seed`` (all of it at 1.0)."""
    if fraction >= 1.0:
        return train
    _, part = stratified_split(train.labels, fraction, seed)
    return train.subset(part)


def chain(*hooks: Callable | None) -> Callable | None:
    """One batch hook that applies ``hooks`` in order (``None`` entries skipped)."""
    active = [h for h in hooks if h is not None]
    if not active:
        return None

    def run(images: torch.Tensor, labels: torch.Tensor):
        for hook in active:
            images, labels = hook(images, labels)
        return images, labels

    return run


def train_arm(train: ImageData, test: ImageData, sampler, dose: float, seed: int, *, steps: int,
              batch_size: int, classical_augment: bool, model_factory: Callable[[int, int], nn.Module],
              tick: Callable | None = None, method: Method = Method(), unlabeled: torch.Tensor | None = None,
              synthetic_labels: str | Sequence[float] = "same", **method_options: Any) -> dict[str, Any]:
    """One classifier: ``train`` with ``method`` (+ a share ``dose`` of synthetic rows per batch),
    tested on ``test``.

    The synthetic rows replace real ones before the classical augmentation, which then treats
    every row alike (as a batch-level augmentation on the device would); their classes are the
    replaced rows' (``"same"``) or drawn with ``synthetic_labels`` as per-class weights.
    """
    mix = SyntheticMix(sampler, p=dose, mode="replace", labels=synthetic_labels, seed=seed) if dose > 0 else None
    model = train_method(train.as_float(), train.labels, train.num_classes, method, steps=steps, seed=seed,
                         batch_size=batch_size, unlabeled=unlabeled, synthetic=mix,
                         classical_augment=classical_augment, model_factory=model_factory, tick=tick,
                         **method_options)
    return score(model, test)


def score(model: nn.Module, test: ImageData) -> dict[str, Any]:
    """Accuracy, balanced accuracy and per-class accuracy of ``model`` on ``test``."""
    preds = predict(model, test.as_float())
    return {"accuracy": (preds == test.labels).float().mean().item(),
            "balanced_accuracy": balanced_accuracy(preds, test.labels, test.num_classes),
            "per_class": per_class_accuracy(preds, test.labels, test.num_classes)}


def summarise_fraction(fraction: float, train_size: int, seeds: Sequence[int], doses: Sequence[float],
                       runs: dict[float, list[dict[str, Any]]], class_names: Sequence[str]) -> dict[str, Any]:
    """Means, intervals and paired gains over seeds for one fraction; ``runs[dose][i]`` is seed ``i``'s arm."""
    base = runs[0.0]
    arms = []
    for dose in doses:
        rows = runs[dose]
        arm: dict[str, Any] = {
            "dose": dose,
            "accuracy": mean_interval([r["accuracy"] for r in rows]),
            "balanced_accuracy": mean_interval([r["balanced_accuracy"] for r in rows]),
            "per_class_accuracy": {name: mean_interval([r["per_class"][c] for r in rows])["mean"]
                                   for c, name in enumerate(class_names)},
        }
        if dose > 0:
            arm["gain"] = paired_gain([r["accuracy"] for r in base], [r["accuracy"] for r in rows])
            arm["balanced_gain"] = paired_gain([r["balanced_accuracy"] for r in base],
                                               [r["balanced_accuracy"] for r in rows])
            arm["per_class_change"] = {
                name: _strip_values(paired_gain([r["per_class"][c] for r in base], [r["per_class"][c] for r in rows]))
                for c, name in enumerate(class_names)}
        arms.append(arm)
    return {"fraction": fraction, "train_size": train_size, "seeds": list(seeds), "arms": arms}


def _strip_values(interval: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in interval.items() if k != "values"}


def downstream_gain(sampler, train: ImageData, test: ImageData, *, seeds: Sequence[int], doses: Sequence[float],
                    fractions: Sequence[float], steps: int, batch_size: int, classical_augment: bool,
                    model_factory: Callable[[int, int], nn.Module], tick: Callable | None = None,
                    collect: dict[float, list[dict[str, Any]]] | None = None) -> dict[str, Any]:
    """The whole experiment: every fraction x seed x dose; ``doses`` must include 0 (the baseline).
    ``collect`` receives the per-seed scores of each dose at fraction 1 (for
    :func:`~synthaug.evaluation.methods.compare_methods`, which pairs its arms with them)."""
    out = []
    for fraction in fractions:
        runs: dict[float, list[dict[str, Any]]] = {dose: [] for dose in doses}
        sizes = set()
        for seed in seeds:
            subset = fraction_subset(train, fraction, seed)
            sizes.add(len(subset))
            for dose in doses:
                runs[dose].append(train_arm(subset, test, sampler, dose, seed, steps=steps, batch_size=batch_size,
                                            classical_augment=classical_augment, model_factory=model_factory,
                                            tick=tick))
        out.append(summarise_fraction(fraction, max(sizes), seeds, doses, runs, train.class_names))
        if collect is not None and fraction >= 1.0:
            collect.update(runs)
    return {"steps": steps, "batch_size": batch_size, "classical_augment": classical_augment,
            "augment_settings": ClassicalAugment().settings() if classical_augment else None,
            "fractions": out}
