"""Keep only the samples a classifier agrees with."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..errors import SynthaugError
from .sampler import Sampler, make_generator

__all__ = ["FilteredSampler"]


class FilteredSampler(Sampler):
    """Wraps a sampler: a user's classifier rejects samples whose predicted class differs from
    the requested one (or whose confidence is below ``min_confidence``); rejected rows are
    drawn again with fresh noise from the same generator, up to ``max_rounds`` times.

    Rows still rejected after the last round are kept, so the output always has one image per
    label. ``acceptance_rate`` is the share of all generated samples the classifier accepted
    (over the sampler's life); ``last_accepted`` is the mask of rows accepted in the last call.

    Example:
        >>> import torch
        >>> from synthaug.models import create_generator
        >>> from synthaug.card import GeneratorCard
        >>> from synthaug import TorchSampler
        >>> g = create_generator("dcgan", {"g_width": 8}, (1, 8, 8), 2)
        >>> card = GeneratorCard("dcgan", {}, [1, 8, 8], 2, ["a", "b"], g.noise_spec(), {"range": [0, 1]})
        >>> says_zero = lambda x: torch.stack([torch.ones(len(x)), torch.zeros(len(x))], 1)
        >>> sampler = FilteredSampler(TorchSampler(g, card), says_zero, max_rounds=3)
        >>> images = sampler.sample([0, 1], seed=0)
        >>> sampler.last_accepted.tolist(), round(sampler.acceptance_rate, 2)
        ([True, False], 0.5)
    """

    def __init__(self, inner: Sampler, classifier: Callable[[torch.Tensor], torch.Tensor],
                 min_confidence: float | None = None, max_rounds: int = 10) -> None:
        if max_rounds < 1:
            raise SynthaugError(f"max_rounds: expected at least 1, got {max_rounds}")
        if min_confidence is not None and not 0 < min_confidence <= 1:
            raise SynthaugError(f"min_confidence: expected a probability in (0, 1], got {min_confidence}")
        self.inner, self.classifier = inner, classifier
        self.min_confidence, self.max_rounds = min_confidence, max_rounds
        self.card, self.device, self.batch_size = inner.card, inner.device, inner.batch_size
        self.generated = 0
        self.accepted = 0
        self.last_accepted: torch.Tensor | None = None

    @property
    def truncation(self) -> float | None:  # type: ignore[override]
        return self.inner.truncation

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.generated if self.generated else float("nan")

    def _generate(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.inner._generate(noise, labels)

    def sample_on_device(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        images = self.inner.sample_on_device(labels, generator)
        if labels.shape[0] == 0:  # nothing to judge: the user's classifier may not take an empty batch
            self.last_accepted = torch.ones(0, dtype=torch.bool, device=images.device)
            return images
        ok = self._agrees(images, labels)
        draws, agreed = len(labels), int(ok.sum())
        for _ in range(self.max_rounds - 1):
            if bool(ok.all()):  # one host sync per round: a filter trades speed for quality
                break
            # Redraw every row (no data-dependent shapes), keep a new image only where the old
            # one was rejected and the new one is accepted.
            retry = self.inner.sample_on_device(labels, generator)
            retry_ok = self._agrees(retry, labels)
            images = torch.where((~ok & retry_ok).view(-1, 1, 1, 1), retry, images)
            ok = ok | retry_ok
            draws, agreed = draws + len(labels), agreed + int(retry_ok.sum())
        self.last_accepted = ok
        self.generated += draws
        self.accepted += agreed
        return images

    def sample(self, labels, seed: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        labels = self.check_labels(labels)
        rng = make_generator(seed, generator)
        chunks, accepted = [], []
        for i in range(0, len(labels), self.batch_size):
            chunks.append(self.sample_on_device(labels[i:i + self.batch_size].to(self.device), rng))
            accepted.append(self.last_accepted)
        if not chunks:
            return torch.empty((0, *self.card.image_shape), device=self.device)
        self.last_accepted = torch.cat(accepted)
        return torch.cat(chunks)

    @torch.no_grad()
    def _agrees(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits = self.classifier(images)
        if logits.shape != (len(labels), self.card.num_classes):
            raise SynthaugError(f"the classifier must return logits [N, {self.card.num_classes}], got "
                                f"{tuple(logits.shape)}")
        probs = logits.softmax(dim=1)
        ok = probs.argmax(dim=1) == labels.to(probs.device)
        if self.min_confidence is not None:
            ok &= probs.gather(1, labels.to(probs.device).view(-1, 1)).squeeze(1) >= self.min_confidence
        return ok.to(images.device)
