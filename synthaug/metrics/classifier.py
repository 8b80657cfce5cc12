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

from collections.abc import Callable, Iterable

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


def train_classifier(images: torch.Tensor, labels: torch.Tensor, num_classes: int, epochs: int = 30,
                     batch_size: int = 64, lr: float = 2e-3, seed: int = 0) -> SmallCNN:
    """Train :class:`SmallCNN` on float images in [0, 1]; returns it in eval mode."""
    g = torch.Generator().manual_seed(seed)

    def batches(epoch: int):
        perm = torch.randperm(len(images), generator=g)
        for i in range(0, len(images), batch_size):
            idx = perm[i:i + batch_size]
            if len(idx) > 1:  # batchnorm needs two
                yield images[idx], labels[idx]

    steps = max(1, len(images) // batch_size + (len(images) % batch_size > 1))
    return fit_classifier(batches, steps, images.shape[1], num_classes, epochs, lr, seed)


def fit_classifier(batches: Callable[[int], Iterable[tuple[torch.Tensor, torch.Tensor]]], steps_per_epoch: int,
                   channels: int, num_classes: int, epochs: int = 30, lr: float = 2e-3, seed: int = 0,
                   batch_hook: Callable | None = None) -> SmallCNN:
    """The training loop behind :func:`train_classifier`, for any source of batches.

    ``batches(epoch)`` yields ``(images in [0, 1], labels)`` (labels int or soft); ``batch_hook``
    maps each batch before the step, e.g. a :class:`~synthaug.SyntheticMix`.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SmallCNN(channels, num_classes)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch + 1)
        model.train()
        for epoch in range(epochs):
            for x, y in batches(epoch):
                if batch_hook is not None:
                    x, y = batch_hook(x, y)
                loss = F.cross_entropy(model(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
    return model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    preds = torch.cat([model(images[i:i + 512]).argmax(1) for i in range(0, len(images), 512)])
    return (preds == labels).float().mean().item()
