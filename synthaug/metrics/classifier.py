"""A small CNN classifier, the yardstick for CAS and augmentation gain.

Its training is seeded and self-contained so the same inputs give the same accuracy.

Example:
    >>> import torch
    >>> x, y = torch.rand(32, 1, 8, 8), torch.arange(32) % 2
    >>> model = train_classifier(x, y, num_classes=2, epochs=1, seed=0)
    >>> 0.0 <= accuracy(model, x, y) <= 1.0
    True
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import nn


class SmallCNN(nn.Module):
    def __init__(self, channels: int, num_classes: int, width: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2),
            nn.Linear(2 * width, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * 2 - 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate layer (``2 * width`` values per image): the feature space of
        :mod:`synthaug.evaluation`."""
        return self.net[:-2](x * 2 - 1)


class _BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out),
        )
        self.skip = nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.skip(x))


class SmallResNet(nn.Module):
    """A small residual network (He et al. 2016) for small images: a stem and four basic blocks,
    half of them at half resolution. Slower than :class:`SmallCNN`, a stronger classifier on
    larger images."""

    def __init__(self, channels: int, num_classes: int, width: int = 32) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU())
        self.blocks = nn.Sequential(_BasicBlock(width, width, 1), _BasicBlock(width, width, 1),
                                    _BasicBlock(width, 2 * width, 2), _BasicBlock(2 * width, 2 * width, 1))
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(2 * width, num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x * 2 - 1)).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


#: A batch's loss: ``loss(model, images, labels)``, the model in train mode.
Loss = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]

#: The classifiers known by name (``--classifier``); each is built as ``cls(channels, num_classes)``.
CLASSIFIERS: dict[str, Callable[[int, int], nn.Module]] = {"small_cnn": SmallCNN, "resnet": SmallResNet}


def train_classifier(images: torch.Tensor, labels: torch.Tensor, num_classes: int, epochs: int = 30,
                     batch_size: int = 64, lr: float = 2e-3, seed: int = 0) -> SmallCNN:
    """Train :class:`SmallCNN` on float images in [0, 1] for ``epochs`` passes over them (each
    reshuffled, a last batch of one image skipped); returns it in eval mode. An entry point to
    :func:`fit_classifier`; :func:`fit_steps` counts optimiser steps instead."""
    g = torch.Generator().manual_seed(seed)

    def batches(epoch: int):
        perm = torch.randperm(len(images), generator=g)
        for i in range(0, len(images), batch_size):
            idx = perm[i:i + batch_size]
            if len(idx) > 1:  # batchnorm needs two
                yield images[idx], labels[idx]

    steps = max(1, len(images) // batch_size + (len(images) % batch_size > 1))
    return fit_classifier(batches, steps, images.shape[1], num_classes, epochs, lr, seed)


def reshuffled_indices(n: int, size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless batches of ``size`` indices into ``n`` items: reshuffled passes, the tail of one
    carried into the next, so every batch is full.

    Example:
        >>> batches = reshuffled_indices(3, 2, torch.Generator().manual_seed(0))
        >>> [next(batches).tolist() for _ in range(3)]
        [[2, 0], [1, 2], [1, 0]]
    """
    pending = torch.empty(0, dtype=torch.int64)
    while True:
        while len(pending) < size:
            pending = torch.cat([pending, torch.randperm(n, generator=generator)])
        idx, pending = pending[:size], pending[size:]
        yield idx


def fit_steps(images: torch.Tensor, labels: torch.Tensor, num_classes: int, steps: int, seed: int = 0,
              batch_size: int = 64, lr: float = 2e-3, batch_hook: Callable | None = None,
              model_factory: Callable[[int, int], nn.Module] = SmallCNN, *,
              draw: Callable[[int, torch.Generator], Iterator[torch.Tensor]] | None = None,
              loss: Loss | None = None) -> nn.Module:
    """Train for exactly ``steps`` optimiser steps on full batches of ``min(batch_size, N)``
    images, drawn from reshuffled passes over the data (order seeded by ``seed``).

    The fixed step count is what makes arms comparable: every arm of an experiment gets the same
    compute whatever its data size. The same ``seed`` gives the same batches and initial weights,
    so two arms that differ only in ``batch_hook`` are paired.

    ``draw(size, generator)`` replaces the reshuffled passes (:func:`reshuffled_indices`) with
    another endless stream of index batches drawn from ``generator`` (seeded by ``seed``);
    ``loss`` is :func:`fit_classifier`'s. An entry point to :func:`fit_classifier`, and the one
    behind :func:`~synthaug.metrics.methods.train_method`.

    Example:
        >>> x, y = torch.rand(10, 1, 8, 8), torch.arange(10) % 2
        >>> model = fit_steps(x, y, 2, steps=3, seed=0)
        >>> predict(model, x).shape
        torch.Size([10])
    """
    size = min(batch_size, len(images))
    order = torch.Generator().manual_seed(seed)
    indices = reshuffled_indices(len(images), size, order) if draw is None else draw(size, order)

    def batches(epoch: int):
        for _ in range(steps):
            idx = next(indices)
            yield images[idx], labels[idx]

    return fit_classifier(batches, steps, images.shape[1], num_classes, epochs=1, lr=lr, seed=seed,
                          batch_hook=batch_hook, model_factory=model_factory, loss=loss)


def cross_entropy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The default loss of :func:`fit_classifier`: cross-entropy of ``model(images)``."""
    return F.cross_entropy(model(images), labels)


def fit_classifier(batches: Callable[[int], Iterable[tuple[torch.Tensor, torch.Tensor]]], steps_per_epoch: int,
                   channels: int, num_classes: int, epochs: int = 30, lr: float = 2e-3, seed: int = 0,
                   batch_hook: Callable | None = None,
                   model_factory: Callable[[int, int], nn.Module] = SmallCNN, loss: Loss | None = None) -> nn.Module:
    """The training loop of every classifier here (:func:`train_classifier`, :func:`fit_steps`,
    :func:`~synthaug.metrics.methods.train_method`), for any source of batches.

    ``batches(epoch)`` yields ``(images in [0, 1], labels)`` (labels int or soft); ``batch_hook``
    maps each batch before the step, e.g. a :class:`~synthaug.SyntheticMix`.
    ``model_factory(channels, num_classes)`` builds the network (it takes images in [0, 1]);
    its initial weights come from ``seed`` too. ``loss(model, images, labels)`` is a batch's
    loss (default :func:`cross_entropy`). AdamW with a one-cycle schedule over
    ``epochs * steps_per_epoch`` steps; torch's global RNG is left as it was.
    """
    loss = cross_entropy if loss is None else loss
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_factory(channels, num_classes)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch + 1)
        model.train()
        for epoch in range(epochs):
            for x, y in batches(epoch):
                if batch_hook is not None:
                    x, y = batch_hook(x, y)
                value = loss(model, x, y)
                opt.zero_grad(set_to_none=True)
                value.backward()
                opt.step()
                sched.step()
    return model.eval()


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Predicted classes of float images in [0, 1], in eval mode."""
    model.eval()
    if len(images) == 0:
        return torch.empty(0, dtype=torch.int64)
    return torch.cat([model(images[i:i + batch_size]).argmax(1) for i in range(0, len(images), batch_size)])


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    preds = predict(model, images)
    return (preds == labels).float().mean().item()


def per_class_accuracy(preds: torch.Tensor, labels: torch.Tensor, num_classes: int) -> list[float]:
    """Recall of each class (``nan`` for a class absent from ``labels``).

    Example:
        >>> per_class_accuracy(torch.tensor([0, 0, 1, 0]), torch.tensor([0, 0, 1, 1]), 3)
        [1.0, 0.5, nan]
    """
    hits = torch.bincount(labels[preds == labels], minlength=num_classes).double()
    totals = torch.bincount(labels, minlength=num_classes).double()
    return (hits / totals).tolist()


def balanced_accuracy(preds: torch.Tensor, labels: torch.Tensor, num_classes: int) -> float:
    """Mean per-class recall over the classes present in ``labels``.

    Example:
        >>> balanced_accuracy(torch.tensor([0, 0, 1, 0]), torch.tensor([0, 0, 1, 1]), 2)
        0.75
    """
    recalls = torch.tensor(per_class_accuracy(preds, labels, num_classes), dtype=torch.float64)
    return recalls[~recalls.isnan()].mean().item()


__all__ = ["SmallCNN", "SmallResNet", "CLASSIFIERS", "Loss", "train_classifier", "fit_steps", "fit_classifier",
           "reshuffled_indices", "cross_entropy", "predict", "accuracy", "per_class_accuracy", "balanced_accuracy"]
