"""``SyntheticMix``: swap freshly generated samples into batches on the device, in the loop."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SynthaugError
from ..runtime.sampler import Sampler
from ..seeding import derive
from ..validation import check_int, is_real, shown

__all__ = ["SyntheticMix"]


class SyntheticMix(nn.Module):
    """Replace (or append) a fraction ``p`` of a batch's rows with synthetic samples.

    Applied after the DataLoader, on the batch's device: ``images, labels = mix(images, labels)``.
    Which rows and which classes are drawn in :meth:`make_params` from one seeded generator on
    the batch's device; :meth:`forward` applies them. Nothing waits for the host: the number of
    rows is ``round(p * batch)``, known from shapes alone.

    Labels may be integer ``[B]`` or soft ``[B, num_classes]`` (as torchvision's CutMix/MixUp
    emit), and come back in the same form and dtype; synthetic rows get one-hot soft labels. So
    the mix composes with CutMix/MixUp in either order. Images come back in the batch's dtype:
    for a float batch, synthetic rows are in [0, 1] (then ``normalize``); for an integer batch
    (e.g. uint8 straight from the loader) they are scaled to ``0..pixel_max`` and rounded.
    When ``round(p * batch)`` is 0 (``p=0``, an empty batch, one row at ``p=0.5``) the batch
    comes back unchanged.

    Dose: ``p`` is a fraction, or a schedule such as ``linear_schedule(0.8, 0.2, steps=5000)``
    (more synthetic early, less late; any callable ``step -> fraction in [0, 1]`` works). The step
    is the number of batches the mix has seen: every ``forward`` in training mode (the default;
    ``mix.eval()`` stops the count) adds one after drawing its batch's rows with ``p(step)``.
    ``mix.step`` can be set, e.g. when resuming. To weigh the synthetic rows in the loss, pass
    ``return_mask=True`` and use :func:`~synthaug.synthetic_weight` ``(mask, w)``.

    Seeds: the draws come from ``seed`` on a single process (and on rank 0). Under
    ``torch.distributed`` each rank folds its rank into the seed, so ranks draw different rows,
    classes and noise instead of the same synthetic samples on every rank; the rank is read
    when the first batch arrives, or given as ``rank``.

    Args:
        sampler: the generator's :class:`~synthaug.Sampler`; it should live on the batch's device.
        p: fraction of rows to replace (``mode="replace"``) or to add (``mode="append"``), or a
            schedule giving it per step (see Dose above).
        labels: ``"same"`` (a replaced row keeps its class; argmax of soft labels), ``"balanced"``
            (uniform over classes) or a sequence of per-class weights.
        normalize: what the real batch went through: ``(mean, std)`` per channel, or a callable
            on ``[N, C, H, W]`` images in [0, 1]; ``None`` leaves them in [0, 1].
        return_mask: also return the boolean mask of synthetic rows.
        pixel_max: white level of integer batches (default: the card's, e.g. 255, or 16 for digits).
        rank: this process's rank for seeding; default ``torch.distributed``'s (0 when not initialised).

    Example:
        >>> import torch
        >>> from synthaug.models import create_generator
        >>> from synthaug.card import GeneratorCard
        >>> from synthaug import TorchSampler
        >>> g = create_generator("dcgan", {"g_width": 8}, (1, 8, 8), 3)
        >>> card = GeneratorCard("dcgan", {}, [1, 8, 8], 3, ["a", "b", "c"], g.noise_spec(), {"range": [0, 1]})
        >>> mix = SyntheticMix(TorchSampler(g, card), p=0.25, normalize=([0.5], [0.5]), return_mask=True)
        >>> images, labels, mask = mix(torch.zeros(8, 1, 8, 8), torch.arange(8) % 3)
        >>> images.shape, int(mask.sum()), labels.tolist() == (torch.arange(8) % 3).tolist()
        (torch.Size([8, 1, 8, 8]), 2, True)
        >>> from synthaug import linear_schedule
        >>> mix = SyntheticMix(TorchSampler(g, card), p=linear_schedule(0.5, 0.25, steps=2), return_mask=True)
        >>> [int(mix(torch.zeros(8, 1, 8, 8), torch.arange(8) % 3)[2].sum()) for _ in range(3)], mix.step
        ([4, 3, 2], 3)
    """

    def __init__(self, sampler: Sampler, p: float | Callable[[int], float] = 0.5,
                 labels: str | Sequence[float] = "same",
                 normalize: tuple[Sequence[float], Sequence[float]] | Callable | None = None,
                 mode: str = "replace", return_mask: bool = False, resize: bool = False, seed: int = 0,
                 pixel_max: int | None = None, rank: int | None = None) -> None:
        super().__init__()
        _keep_step_out_of_compiled_graphs()
        if not callable(p) and (not is_real(p) or not 0.0 <= p <= 1.0):
            raise SynthaugError(f"p: expected a fraction in [0, 1] or a schedule (a callable step -> fraction), "
                                f"got {shown(p)}")
        if mode not in ("replace", "append"):
            raise SynthaugError(f"mode: expected replace or append, got {mode!r}")
        self.sampler, self.p, self.mode = sampler, (p if callable(p) else float(p)), mode
        self.step = 0
        self.return_mask, self.resize, self.seed = return_mask, resize, int(seed)
        card_pixel_max = sampler.card.pixel_max
        self.pixel_max = check_int(card_pixel_max if pixel_max is None else pixel_max, "pixel_max")
        self.rank = None if rank is None else check_int(rank, "rank", low=0)
        self.num_classes = sampler.card.num_classes
        self.image_shape = tuple(sampler.card.image_shape)
        self.label_mode, weights = _label_mode(labels, self.num_classes)
        self.register_buffer("class_weights", weights, persistent=False)
        self.normalize = normalize
        if normalize is not None and not callable(normalize):
            mean, std = (torch.as_tensor(v, dtype=torch.float32).reshape(-1, 1, 1) for v in normalize)
            if mean.shape[0] not in (1, self.image_shape[0]) or std.shape[0] not in (1, self.image_shape[0]):
                raise SynthaugError(f"normalize: expected (mean, std) with 1 or {self.image_shape[0]} values each, "
                                    f"got {mean.shape[0]} and {std.shape[0]}")
            if (std <= 0).any():
                raise SynthaugError("normalize: expected positive std values")
            self.register_buffer("mean", mean, persistent=False)
            self.register_buffer("std", std, persistent=False)
        self._generators: dict[torch.device, torch.Generator] = {}

    @property
    def step(self) -> int:
        """Batches seen in training mode: the step a schedule ``p`` is evaluated at."""
        return self._step

    @step.setter
    def step(self, value: int) -> None:
        self._step = check_int(value, "step", low=0)

    # The step is Python state that changes every batch: read and advanced outside compiled
    # graphs (torch.compile would otherwise guard on its value and recompile on every batch);
    # see _keep_step_out_of_compiled_graphs.
    def current_p(self) -> float:
        """The fraction for the next batch: ``p``, or ``p(step)`` for a schedule (validated)."""
        if not callable(self.p):
            return self.p
        value = self.p(self.step)
        if not is_real(value) or not 0.0 <= value <= 1.0:
            raise SynthaugError(f"p schedule: expected a fraction in [0, 1] at step {self.step}, "
                                f"got {shown(value)}")
        return float(value)

    def _count_batch(self) -> None:
        if self.training:
            self._step += 1

    def generator(self, device: torch.device) -> torch.Generator:
        """The seeded generator for ``device`` (one per device, created on first use)."""
        if device not in self._generators:
            self._generators[device] = torch.Generator(device=device).manual_seed(self.rank_seed())
        return self._generators[device]

    def rank_seed(self) -> int:
        """``seed`` on rank 0 (and on a single process), a seed derived from it on other ranks."""
        rank = self.rank if self.rank is not None else _distributed_rank()
        return self.seed if rank == 0 else derive(self.seed, "rank", rank)

    def make_params(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
        """All random choices for one batch: its fraction ``p``, rows to replace, their classes, the noise
        generator. In training mode, ``forward`` then counts the batch (see ``step``)."""
        batch = images.shape[0]
        p = self.current_p()
        k = round(p * batch)
        device = images.device
        g = self.generator(device)
        rows = torch.randperm(batch, generator=g, device=device)[:k] if self.mode == "replace" else None
        if self.label_mode == "same":
            source = labels if labels.ndim == 1 else labels.argmax(dim=1)
            if rows is None:  # appending: copy the classes of k random rows
                # max(batch, 1): an empty batch has k = 0 and randint refuses an empty range.
                source = source[torch.randint(0, max(batch, 1), (k,), generator=g, device=device)]
                classes = source
            else:
                classes = source[rows]
        elif self.label_mode == "balanced":
            classes = torch.randint(0, self.num_classes, (k,), generator=g, device=device)
        else:
            weights = self.class_weights.to(device)
            classes = torch.multinomial(weights, k, replacement=True, generator=g) if k else \
                torch.empty(0, dtype=torch.int64, device=device)
        # Noise is drawn on the sampler's device (normally the batch's, so the same generator).
        return {"p": p, "rows": rows, "classes": classes.to(torch.int64),
                "noise_generator": self.generator(self.sampler.device)}

    def synthesize(self, classes: torch.Tensor, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
        """Synthetic images of ``classes``, normalised and cast like the real batch ``like``."""
        images = self.sampler.sample_on_device(classes.to(self.sampler.device), generator)
        images = images.to(like.device)
        if images.shape[2:] != like.shape[2:]:
            images = F.interpolate(images, size=like.shape[2:], mode="bilinear", antialias=True, align_corners=False)
        if not like.dtype.is_floating_point:  # integer pixels: 0..pixel_max, as the real rows
            return (images.clamp(0, 1) * self.pixel_max).round().to(like.dtype)
        if self.normalize is not None:
            images = self.normalize(images) if callable(self.normalize) else (images - self.mean) / self.std
        return images.to(like.dtype)

    def forward(self, images: torch.Tensor, labels: torch.Tensor):
        self._check(images, labels)
        params = self.make_params(images, labels)
        self._count_batch()
        batch = images.shape[0]
        if params["classes"].shape[0] == 0:  # no synthetic rows: nothing to generate or insert
            mask = torch.zeros(batch, dtype=torch.bool, device=images.device)
            return (images, labels, mask) if self.return_mask else (images, labels)
        synthetic = self.synthesize(params["classes"], params["noise_generator"], images)
        # The labels' own dtype (int32, uint8, ...): index_copy needs it, and append keeps it.
        synthetic_labels = params["classes"].to(labels.dtype) if labels.ndim == 1 else \
            F.one_hot(params["classes"], self.num_classes).to(labels.dtype)
        if self.mode == "append":
            out_images = torch.cat([images, synthetic])
            out_labels = torch.cat([labels, synthetic_labels])
            mask = torch.arange(out_images.shape[0], device=images.device) >= batch
        else:
            rows = params["rows"]
            out_images = images.index_copy(0, rows, synthetic)
            out_labels = labels.index_copy(0, rows, synthetic_labels)
            mask = torch.zeros(batch, dtype=torch.bool, device=images.device).index_fill(0, rows, True)
        return (out_images, out_labels, mask) if self.return_mask else (out_images, out_labels)

    def _check(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        # Shapes only: these checks cost no device work and no host sync.
        if images.ndim != 4:
            raise SynthaugError(f"expected images [B, C, H, W], got shape {tuple(images.shape)}")
        if images.dtype == torch.bool or images.dtype.is_complex:
            raise SynthaugError(f"expected float or integer images, got {images.dtype}")
        if not images.dtype.is_floating_point:
            if self.normalize is not None:
                raise SynthaugError(f"normalize applies to float batches, got {images.dtype} images (synthetic "
                                    f"rows of integer batches are scaled to 0..pixel_max instead)")
            if self.pixel_max > torch.iinfo(images.dtype).max:
                raise SynthaugError(f"pixel_max {self.pixel_max} does not fit the batch's {images.dtype}")
        c, h, w = self.image_shape
        if images.shape[1] != c:
            raise SynthaugError(f"the generator makes {c}-channel images, the batch has {images.shape[1]}")
        if images.shape[2:] != (h, w) and not self.resize:
            raise SynthaugError(f"the generator makes {h}x{w} images, the batch has "
                                f"{images.shape[2]}x{images.shape[3]}: pass resize=True to resize")
        if labels.shape[0] != images.shape[0] or not (
                (labels.ndim == 1 and not labels.dtype.is_floating_point and labels.dtype != torch.bool)
                or (labels.ndim == 2 and labels.shape[1] == self.num_classes)):
            raise SynthaugError(f"expected labels as int [B] or soft [B, {self.num_classes}] for a batch of "
                                f"{images.shape[0]}, got {labels.dtype} of shape {tuple(labels.shape)}")
        if labels.ndim == 1 and self.label_mode != "same" and torch.iinfo(labels.dtype).max < self.num_classes - 1:
            raise SynthaugError(f"labels of dtype {labels.dtype} cannot hold the generator's classes "
                                f"0..{self.num_classes - 1}: expected a wider integer dtype")
        if labels.ndim == 1 and labels.device.type == "cpu" and labels.numel():
            # Free on the CPU; on an accelerator this would wait for the device, so it is skipped.
            low, high = int(labels.min()), int(labels.max())
            if low < 0 or high >= self.num_classes:
                raise SynthaugError(f"expected labels in 0..{self.num_classes - 1} (the generator's classes), "
                                    f"got {low if low < 0 else high}")

    def extra_repr(self) -> str:
        dose = f"p={self.p!r}, step={self.step}" if callable(self.p) else f"p={self.p}"
        return f"{dose}, labels={self.label_mode}, mode={self.mode}, classes={self.num_classes}"


def _distributed_rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _label_mode(labels: str | Sequence[float], num_classes: int) -> tuple[str, torch.Tensor]:
    if isinstance(labels, str):
        if labels not in ("same", "balanced"):
            raise SynthaugError(f"labels: expected 'same', 'balanced' or per-class weights, got {labels!r}")
        return labels, torch.ones(num_classes)
    weights = torch.as_tensor(labels, dtype=torch.float32)
    if weights.shape != (num_classes,) or (weights < 0).any() or weights.sum() <= 0:
        raise SynthaugError(f"labels: expected {num_classes} non-negative class weights with a positive sum, "
                            f"got {list(weights.reshape(-1).tolist())}")
    return "weights", weights


def _keep_step_out_of_compiled_graphs() -> None:
    """``torch.compiler.disable`` on the methods that read and advance the step, applied when the
    first SyntheticMix is built rather than by a decorator: the decorator imports
    ``torch._dynamo`` (about a second), which every ``import synthaug`` would then pay."""
    if not SyntheticMix.__dict__.get("_step_kept_out", False):
        for name in ("current_p", "_count_batch"):
            setattr(SyntheticMix, name, torch.compiler.disable(getattr(SyntheticMix, name)))
        SyntheticMix._step_kept_out = True
