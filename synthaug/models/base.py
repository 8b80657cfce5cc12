"""The two halves of a generator family (the contract every registered family keeps).

* :class:`ConditionalGenerator` — the deployable part. ``forward(noise, labels)`` is a pure
  function: all randomness enters through ``noise``, so torch and ONNX agree and seeds mean
  something.
* :class:`GeneratorTrainer` — the training objective. It owns the networks being trained, their
  optimizers and the EMA copy of the generator used for sampling, so the training loop never
  branches on the family. It does not step them: :meth:`GeneratorTrainer.phases` yields one
  :class:`Phase` per optimisation phase (a loss tensor and the optimizer it is for), and the loop
  (:mod:`synthaug.models.step`) does backward, gradient sync across processes, clipping, mixed
  precision, the optimizer step and the EMA update, so every family gets them alike.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from ..errors import SynthaugError
from .step import StepRunner

__all__ = ["accept_fewer_param_groups", "check_image_shape", "ConditionalGenerator", "GeneratorTrainer",
           "keep_missing_on_load", "Phase"]


class ConditionalGenerator(nn.Module):
    """``forward(noise[N, *noise_shape] float32, labels[N] int64) -> images[N, C, H, W]`` in [0, 1]."""

    family: ClassVar[str] = ""
    #: Image sides (H == W) this architecture can produce.
    image_sizes: ClassVar[tuple[int, ...]] = ()
    #: ONNX export parity criterion (read by ``exporters.onnx.export``): ``None`` requires every
    #: output value within tolerance of torch's; a share (e.g. 0.999) requires only that share,
    #: for samplers where a last-bit float difference changes what is sampled after it.
    parity_min_equal: ClassVar[float | None] = None

    def __init__(self, config: Any, image_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__()
        check_image_shape(type(self), image_shape)
        self.config = config
        self.image_shape = tuple(int(s) for s in image_shape)
        self.num_classes = int(num_classes)

    def noise_spec(self) -> dict[str, Any]:
        """The card's ``noise`` entry: name, per-sample shape and distribution."""
        raise NotImplementedError


def check_image_shape(cls: type[ConditionalGenerator], image_shape) -> None:
    channels, height, width = image_shape
    if channels not in (1, 3):
        raise SynthaugError(f"{cls.family} needs 1 or 3 image channels, got {channels}")
    if height != width or height not in cls.image_sizes:
        sizes = ", ".join(str(s) for s in cls.image_sizes)
        raise SynthaugError(
            f"{cls.family} cannot produce {height}x{width} images: expected a square image size "
            f"among {sizes} (set image_size=...)"
        )


@dataclass
class Phase:
    """One optimisation phase of a training step: the loop minimises ``loss`` with the optimizer
    named ``optimizer`` (a key of :meth:`GeneratorTrainer.optimizers`; the parameters it holds are
    the ones this phase updates and, across processes, the ones whose gradients are averaged).

    ``logs``: what to record for this step (detached tensors or numbers), the loss included under
    the family's own name. ``clip``: the largest gradient norm over the optimizer's parameters
    (0: no clipping)."""

    optimizer: str
    loss: torch.Tensor
    logs: dict[str, torch.Tensor | float] = field(default_factory=dict)
    clip: float = 0.0


class GeneratorTrainer(nn.Module):
    """A family's training objective.

    Subclasses build ``self.generator`` (trained) and any other networks, then call
    :meth:`init_ema`. :meth:`phases` takes real images in [0, 1] and int64 labels, draws every
    random number from ``rng`` and yields the step's :class:`Phase` s in order; code after a
    ``yield`` runs after the loop has stepped that phase's optimizer (a GAN's generator loss sees
    the discriminator just updated).
    """

    generator: ConditionalGenerator
    ema: ConditionalGenerator

    def __init__(self, config: Any, image_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__()
        self.config = config
        self.image_shape = tuple(image_shape)
        self.num_classes = int(num_classes)

    def init_ema(self) -> None:
        self.ema = copy.deepcopy(self.generator).eval().requires_grad_(False)

    @torch.no_grad()
    def update_ema(self, step: int, decay: float) -> None:
        # Warm-up: early on the EMA would mostly remember the random init.
        d = min(decay, (1.0 + step) / (10.0 + step))
        for p_ema, p in zip(self.ema.parameters(), self.generator.parameters()):
            p_ema.lerp_(p, 1.0 - d)
        for b_ema, b in zip(self.ema.buffers(), self.generator.buffers()):
            b_ema.copy_(b)

    #: Fraction of the data ``fit`` holds out for :meth:`evaluate` unless told otherwise.
    default_holdout: ClassVar[float] = 0.0
    #: Whether ``training_step`` learns from its ``unlabeled`` batch (``fit --unlabeled``).
    uses_unlabeled: ClassVar[bool] = False

    @classmethod
    def size_defaults(cls, image_shape: tuple[int, int, int], dataset_size: int) -> dict[str, Any]:
        """Hyper-parameters whose default depends on the data (e.g. narrower networks for larger
        images); ``fit`` applies them under the user's own ``config`` and records them."""
        return {}

    def prepare(self, dataset_size: int) -> None:
        """Called by ``fit`` once the data is known, before training or resuming: settle
        data-dependent choices (e.g. augmentation on small datasets). Must be deterministic."""

    @torch.no_grad()
    def evaluate(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        """Metrics on held-out images in [0, 1] (e.g. test bits/dim); ``{}`` if the family has none."""
        return {}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    @property
    def ema_decay(self) -> float:
        """Decay of the sampling generator's moving average, applied by the loop after each step."""
        return float(self.config.ema_decay)

    def phases(self, images: torch.Tensor, labels: torch.Tensor, rng: torch.Generator, step: int,
               unlabeled: torch.Tensor | None = None) -> Iterator[Phase]:
        """The step's optimisation phases, in order. ``unlabeled``: ``None`` or real images
        ``[B, C, H, W]`` in [0, 1] without labels (same size as ``images``); with ``None`` the
        step must be exactly the labelled-only one. A family that uses them logs at least one
        ``unlabeled_*`` loss."""
        raise NotImplementedError

    def training_step(self, images: torch.Tensor, labels: torch.Tensor,
                      rng: torch.Generator, step: int,
                      unlabeled: torch.Tensor | None = None) -> dict[str, float]:
        """One whole update on one process, in float32, as ``fit`` does it: the logs as numbers."""
        logs = StepRunner()(self, images, labels, rng, step, unlabeled)
        return {name: float(value) for name, value in logs.items()}

    def sampling_generator(self) -> ConditionalGenerator:
        """The generator to sample from and export: the EMA copy, in eval mode."""
        return self.ema.eval()

    def config_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config)


# Trainers gain networks over releases (the VAE's M2 classifier, PixelRNN's no-label vectors):
# these let checkpoints written before that still resume.


def keep_missing_on_load(module: nn.Module) -> None:
    """Let a state dict written before ``module`` existed load strictly into its parent: keys of
    ``module`` the dict lacks keep their current (initial) values. For networks a trainer gained
    later (checkpoints from older versions still resume and ``Run.trainer()`` still works)."""

    def fill(mod, state_dict, prefix, *_):
        for name, value in mod.state_dict().items():
            state_dict.setdefault(prefix + name, value)

    module.register_load_state_dict_pre_hook(fill)


def accept_fewer_param_groups(optimizer: torch.optim.Optimizer) -> None:
    """Let an optimizer state saved before its trailing parameter groups were added load: the
    missing groups start with their current settings and no state (as at step 0)."""

    def extend(opt, state_dict):
        saved = state_dict["param_groups"]
        if len(saved) >= len(opt.param_groups):
            return None
        # Parameter ids number the groups in order, so the current trailing groups fit after the saved ones.
        current = opt.state_dict()["param_groups"]
        return {**state_dict, "param_groups": [*saved, *current[len(saved):]]}

    optimizer.register_load_state_dict_pre_hook(extend)
