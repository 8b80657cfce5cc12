"""How a practitioner trains a classifier on few or imbalanced labels: the baselines synthetic
samples must beat, in one trainer.

:func:`train_method` trains one classifier for a fixed number of optimiser steps with any
combination of

- **sampling**: ``"uniform"`` (reshuffled passes over the labelled images) or ``"balanced"``
  (each item drawn with probability proportional to 1 / its class count: class-balanced
  resampling, as ``WeightedRandomSampler`` does);
- **loss**: ``"ce"`` or ``"logit_adjusted"`` (Menon et al. 2021: cross-entropy on
  ``logits + tau * log(prior)``, the prior from the training labels; predictions use the raw
  logits);
- **unlabelled images**: ``None``, ``"pseudo_label"`` (Lee 2013: a classifier trained the same
  way without them labels those it predicts with probability >= ``threshold``; they join the
  labelled images) or ``"fixmatch"`` (Sohn et al. 2020: per step ``mu * B`` unlabelled images; the
  prediction on a weak view, kept when its probability >= ``threshold``, is the target of a strong
  view; loss = CE(labelled) + ``lambda_u`` * mean(mask * CE(strong, pseudo-label)));
- **synthetic rows**: a batch hook (e.g. :class:`~synthaug.SyntheticMix`) applied to every
  labelled batch before the classical augmentation.

Every random draw comes from ``seed``: two calls that differ only in the method share the
initial weights, and with uniform sampling also the order of the labelled batches and the
classical augmentation stream, so their test scores are paired. With uniform sampling, no
unlabelled images and plain CE, the result is exactly :func:`~synthaug.metrics.classifier.fit_steps`
with the same hooks: every method trains through it (its loop is
:func:`~synthaug.metrics.classifier.fit_classifier`, the one behind every classifier here).

Example:
    >>> import torch
    >>> x, y = torch.rand(40, 1, 8, 8), torch.arange(40) % 4 // 3   # 30 of class 0, 10 of class 1
    >>> model = train_method(x, y, 2, Method(sampling="balanced", loss="logit_adjusted"), steps=3)
    >>> predict(model, x).shape
    torch.Size([40])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SynthaugError
from .classifier import SmallCNN, fit_steps, predict
from .views import ClassicalAugment, StrongView

SAMPLINGS = ("uniform", "balanced")
LOSSES = ("ce", "logit_adjusted")
UNLABELED = (None, "pseudo_label", "fixmatch")
#: FixMatch's defaults (Sohn et al. 2020): confidence threshold, unlabelled batch ratio, weight.
FIXMATCH_THRESHOLD, FIXMATCH_MU, FIXMATCH_LAMBDA = 0.95, 7, 1.0
#: Confidence a pseudo-label needs in the plain pseudo-labelling baseline.
PSEUDO_LABEL_THRESHOLD = 0.95
#: Logit adjustment's temperature (Menon et al. 2021 use 1).
LOGIT_ADJUST_TAU = 1.0


@dataclass(frozen=True)
class Method:
    """One way of training a classifier; :attr:`name` is its short name (``"resample"``,
    ``"logit_adjust+fixmatch"``), :attr:`label` says it in words.

    Example:
        >>> Method().name, Method(sampling="balanced").name, Method(unlabeled="fixmatch").label
        ('real', 'resample', 'FixMatch on the unlabelled images')
    """

    sampling: str = "uniform"
    loss: str = "ce"
    unlabeled: str | None = None

    def __post_init__(self) -> None:
        for field, value, allowed in (("sampling", self.sampling, SAMPLINGS), ("loss", self.loss, LOSSES),
                                      ("unlabeled", self.unlabeled, UNLABELED)):
            if value not in allowed:
                raise SynthaugError(f"method {field}: expected one of {', '.join(map(str, allowed))}, got {value!r}")

    @property
    def name(self) -> str:
        parts = [{"balanced": "resample"}.get(self.sampling), {"logit_adjusted": "logit_adjust"}.get(self.loss),
                 self.unlabeled]
        return "+".join(p for p in parts if p) or "real"

    @property
    def label(self) -> str:
        parts = [{"balanced": "class-balanced resampling"}.get(self.sampling),
                 {"logit_adjusted": "logit-adjusted loss"}.get(self.loss),
                 {"pseudo_label": "pseudo-labels on the unlabelled images",
                  "fixmatch": "FixMatch on the unlabelled images"}.get(self.unlabeled)]
        return " + ".join(p for p in parts if p) or "real images only"


def train_method(images: torch.Tensor, labels: torch.Tensor, num_classes: int, method: Method = Method(), *,
                 steps: int, seed: int = 0, batch_size: int = 64, lr: float = 2e-3,
                 unlabeled: torch.Tensor | None = None, synthetic: Callable | None = None,
                 classical_augment: bool = True, model_factory: Callable[[int, int], nn.Module] = SmallCNN,
                 tick: Callable | None = None, mu: int = FIXMATCH_MU, threshold: float | None = None,
                 lambda_u: float = FIXMATCH_LAMBDA, tau: float = LOGIT_ADJUST_TAU,
                 synthetic_unlabeled: Callable | None = None) -> nn.Module:
    """Train ``model_factory(channels, num_classes)`` on float ``images`` in [0, 1] with ``method``
    for exactly ``steps`` optimiser steps; returns it in eval mode.

    ``unlabeled`` (float ``[M, C, H, W]``) is needed by the pseudo-label and FixMatch methods;
    ``threshold`` defaults to :data:`PSEUDO_LABEL_THRESHOLD` / :data:`FIXMATCH_THRESHOLD`.
    ``synthetic(images, labels)`` and ``tick(images, labels)`` are batch hooks: the first adds
    synthetic rows before the classical augmentation, the second sees every batch (progress).
    ``synthetic_unlabeled(images, labels)`` (FixMatch only) replaces rows of each unlabelled
    batch before its views are made, its labels ignored: synthetic images as extra unlabelled
    rows for the consistency term (e.g. ``SyntheticMix(sampler, p=0.25, labels="balanced")``).
    """
    if method.unlabeled is not None and (unlabeled is None or len(unlabeled) == 0):
        raise SynthaugError(f"method {method.name}: expected unlabelled images, got none")
    if method.unlabeled == "pseudo_label":
        teacher = train_method(images, labels, num_classes, Method(method.sampling, method.loss), steps=steps,
                               seed=seed, batch_size=batch_size, lr=lr, classical_augment=classical_augment,
                               model_factory=model_factory, tick=tick, tau=tau)
        found = confident_labels(teacher, unlabeled, PSEUDO_LABEL_THRESHOLD if threshold is None else threshold)
        images = torch.cat([images, unlabeled[found.indices]])
        labels = torch.cat([labels, found.labels])
        method = Method(method.sampling, method.loss)
    counts = torch.bincount(labels, minlength=num_classes).double()
    offset = None
    if method.loss == "logit_adjusted":
        prior = (counts / counts.sum()).clamp_min(1e-12)
        offset = (tau * prior.log()).float()
    size = min(batch_size, len(images))
    draw = None if method.sampling == "uniform" else lambda batch, order: _balanced_batches(labels, counts, batch, order)
    augment = ClassicalAugment(seed=seed) if classical_augment else None
    fixmatch = None
    if synthetic_unlabeled is not None and method.unlabeled != "fixmatch":
        raise SynthaugError(f"synthetic_unlabeled: only for the fixmatch method, got {method.name}")
    if method.unlabeled == "fixmatch":
        fixmatch = _FixMatch(unlabeled, mu * size, seed, FIXMATCH_THRESHOLD if threshold is None else threshold,
                             lambda_u, synthetic_unlabeled)

    def hooks(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for hook in (synthetic, augment, tick):
            if hook is not None:
                x, y = hook(x, y)
        return x, y

    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if fixmatch is None:
            return _supervised(model(x), y, offset)
        weak, strong = fixmatch.views()
        logits = model(torch.cat([x, weak, strong]))  # one pass: batchnorm sees all three
        return _supervised(logits[:len(x)], y, offset) + fixmatch.loss(*logits[len(x):].chunk(2))

    return fit_steps(images, labels, num_classes, steps, seed=seed, batch_size=batch_size, lr=lr, batch_hook=hooks,
                     model_factory=model_factory, draw=draw, loss=loss)


def _supervised(logits: torch.Tensor, targets: torch.Tensor, offset: torch.Tensor | None) -> torch.Tensor:
    if offset is not None:
        logits = logits + offset.to(logits.device)
    return F.cross_entropy(logits, targets)


def _balanced_batches(labels: torch.Tensor, counts: torch.Tensor, size: int,
                      order: torch.Generator) -> Iterator[torch.Tensor]:
    """Items drawn with replacement, each with probability proportional to 1 / its class count."""
    weights = (1.0 / counts.clamp_min(1))[labels]
    while True:
        yield torch.multinomial(weights, size, replacement=True, generator=order)


class _FixMatch:
    """The unlabelled half of a FixMatch step: views of a fresh unlabelled batch, and its loss."""

    def __init__(self, pool: torch.Tensor, size: int, seed: int, threshold: float, weight: float,
                 synthetic: Callable | None = None) -> None:
        self.pool, self.size, self.threshold, self.weight, self.synthetic = pool, size, threshold, weight, synthetic
        # Apart from the labelled stream: adding FixMatch leaves the labelled batches as they were.
        self.order = torch.Generator().manual_seed(seed + 7919)
        self.weak = ClassicalAugment(seed=seed + 7919)
        self.strong = StrongView(seed=seed + 7919)
        self.mask_rate = 0.0

    def views(self) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(len(self.pool), (self.size,), generator=self.order)
        u = self.pool[idx]
        if self.synthetic is not None:
            u = self.synthetic(u, torch.zeros(len(u), dtype=torch.int64))[0]
        return self.weak(u, None)[0], self.strong(u, None)[0]

    def loss(self, weak_logits: torch.Tensor, strong_logits: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            confidence, pseudo = torch.softmax(weak_logits.detach().float(), 1).max(1)
            mask = (confidence >= self.threshold).float()
        return self.weight * (F.cross_entropy(strong_logits, pseudo, reduction="none") * mask).mean()


@dataclass
class ConfidentLabels:
    """The unlabelled images a classifier labelled: ``indices`` into the pool, ``labels``,
    ``confidence``."""

    indices: torch.Tensor
    labels: torch.Tensor
    confidence: torch.Tensor


@torch.no_grad()
def predict_proba(model: nn.Module, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Class probabilities of float images in [0, 1], in eval mode."""
    model.eval()
    if len(images) == 0:
        return torch.empty(0, 0)
    return torch.cat([torch.softmax(model(images[i:i + batch_size]).float(), 1)
                      for i in range(0, len(images), batch_size)])


def confident_labels(model: nn.Module, pool: torch.Tensor, threshold: float) -> ConfidentLabels:
    """The images of ``pool`` that ``model`` predicts with probability ``>= threshold``."""
    if not 0 < threshold <= 1 or math.isnan(threshold):
        raise SynthaugError(f"threshold: expected a probability in (0, 1], got {threshold!r}")
    confidence, labels = predict_proba(model, pool).max(1)
    chosen = (confidence >= threshold).nonzero().flatten()
    return ConfidentLabels(chosen, labels[chosen], confidence[chosen])


__all__ = ["Method", "train_method", "predict_proba", "confident_labels", "ConfidentLabels", "SAMPLINGS", "LOSSES",
           "UNLABELED", "FIXMATCH_THRESHOLD", "FIXMATCH_MU", "PSEUDO_LABEL_THRESHOLD", "predict"]
