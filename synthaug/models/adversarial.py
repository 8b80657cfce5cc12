"""The adversarial training step shared by the GAN families (``gan``, ``dcgan``).

A family subclasses :class:`AdversarialTrainer`, builds its generator and a class-conditional
discriminator ``D(images, labels) -> logits[N]`` and hands them to ``__init__``. The step:
one discriminator call on ``cat([real, fake])`` (batchnorm sees one batch, which is also what
DistributedDataParallel needs), then one generator update through the frozen discriminator (two
:class:`~synthaug.models.base.Phase` s: ``d`` then ``g``; the loop steps each and updates the
EMA). DiffAugment, when on, transforms real and fake alike
before every discriminator call.

Unlabelled real images (``fit --unlabeled``; semi-supervised GAN, Salimans et al. 2016, Odena
2016) join the same discriminator call, ``cat([real, fake, unlabeled])``. The projection head
splits D's logit into an unconditional term ``u(x) = linear(h)`` and a class term
``<embed(y), h>``; unlabelled images have no ``y``, so they are scored by ``u`` alone. Training
then plays two games with shared features: the conditional one on labelled reals and fakes, as
without unlabelled images, and an unconditional one, weighted by ``unlabeled_weight``, where
``u`` tells unlabelled reals from the same fakes (scored by ``u`` too, so ``u`` is not only pushed
up) and the generator is trained to raise ``u`` on its fakes. With ``unlabeled=None`` the step is
exactly the labelled-only one.

The config of such a family must provide ``latent_dim``, ``loss`` (``hinge`` |
``nonsaturating``), ``lr_g``, ``lr_d``, ``betas``, ``ema_decay``, ``diffaugment`` (one of
:data:`~synthaug.models.diffaugment.POLICIES`) and ``unlabeled_weight``. Its discriminator's
``forward(images, labels, split=False)`` returns the head's output (see :class:`ProjectionHead`).

Example:
    >>> auto_diffaugment(1347, image_size=8), auto_diffaugment(1347, 32), auto_diffaugment(60000, 32)
    ('off', 'translation,cutout', 'off')
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .base import ConditionalGenerator, GeneratorTrainer, Phase
from .config import param
from .diffaugment import OPERATIONS, POLICIES, diff_augment, parse_policy

__all__ = ["AdversarialConfig", "AUTO_DIFFAUGMENT_BELOW", "AUTO_DIFFAUGMENT_MIN_SIZE", "AUTO_DIFFAUGMENT_OPS",
           "AdversarialTrainer", "auto_diffaugment", "d_loss", "g_loss", "ProjectionHead"]

#: ``diffaugment="auto"`` turns DiffAugment on for training sets smaller than this whose images
#: are at least AUTO_DIFFAUGMENT_MIN_SIZE pixels wide: the regime of Zhao et al. (2020), e.g.
#: CIFAR-10 at 10% (5000 images, 32x32). On small images it is off, by measurement: on digits
#: (8x8), where a one-pixel shift and a 4x4 cutout change a quarter of the image, translation +
#: cutout lowered CAS / real accuracy from 0.960 to 0.837 (gan, 1347 images) and from 0.958 to
#: 0.802 (gan, 140 images); see benchmarks/results/diffaugment_digits.md.
AUTO_DIFFAUGMENT_BELOW = 5000
AUTO_DIFFAUGMENT_MIN_SIZE = 32
#: The operations "auto" turns on.
AUTO_DIFFAUGMENT_OPS = "translation,cutout"


@dataclasses.dataclass
class AdversarialConfig:
    """The training settings the adversarial families (dcgan, gan) share; each family's config
    adds its networks' shape (``latent_dim``, widths, ``d_norm``, ...) after these."""

    loss: str = param("hinge", choices=("hinge", "nonsaturating"))
    lr_g: float = param(2e-4, low=1e-7, high=1.0)
    lr_d: float = param(2e-4, low=1e-7, high=1.0)
    betas: tuple = param((0.0, 0.99), low=0.0, high=0.9999)
    ema_decay: float = param(0.999, low=0.0, high=1.0)
    diffaugment: str = param("auto", choices=POLICIES,
                             help="DiffAugment before D: auto (by dataset size), off, or operations")
    unlabeled_weight: float = param(1.0, low=0.0, high=100.0,
                                    help="weight of the unconditional real/fake game on unlabelled "
                                         "images (fit --unlabeled)")


def auto_diffaugment(dataset_size: int, image_size: int) -> str:
    """The policy ``diffaugment="auto"`` resolves to for ``dataset_size`` training images of side
    ``image_size``."""
    if dataset_size < AUTO_DIFFAUGMENT_BELOW and image_size >= AUTO_DIFFAUGMENT_MIN_SIZE:
        return AUTO_DIFFAUGMENT_OPS
    return "off"


def d_loss(kind: str, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    if kind == "hinge":
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_loss(kind: str, fake_logits: torch.Tensor) -> torch.Tensor:
    if kind == "hinge":
        return -fake_logits.mean()
    return F.softplus(-fake_logits).mean()


class ProjectionHead(nn.Module):
    """A discriminator's output from pooled features ``h``: ``linear(h) + <embed(y), h>``, the
    projection discriminator of Miyato & Koyama (2018), which makes the critic class-aware."""

    def __init__(self, width: int, num_classes: int, norm=lambda m: m) -> None:
        super().__init__()
        self.linear = norm(nn.Linear(width, 1))
        self.embed = norm(nn.Embedding(num_classes, width))

    def forward(self, h: torch.Tensor, labels: torch.Tensor, split: bool = False):
        """``logits[N]``; with ``split``, the two terms apart: ``(unconditional[N],
        class_term[L])`` where the first ``L = len(labels)`` rows of ``h`` are the labelled ones
        (the rest, unlabelled images, get no class term)."""
        if split:
            return self.linear(h).squeeze(1), (self.embed(labels) * h[:labels.shape[0]]).sum(dim=1)
        return self.linear(h).squeeze(1) + (self.embed(labels) * h).sum(dim=1)


class AdversarialTrainer(GeneratorTrainer):
    """Generator + discriminator + EMA + two Adam optimizers + the shared adversarial step.

    The DiffAugment policy actually used is a boolean buffer (one flag per operation in
    :data:`~synthaug.models.diffaugment.OPERATIONS`): ``prepare`` resolves ``"auto"`` from the
    dataset size, and the checkpoint keeps the result, so a resumed run uses the same policy.
    """

    discriminator: nn.Module
    uses_unlabeled = True

    def __init__(self, config: Any, image_shape, num_classes: int, generator: ConditionalGenerator,
                 discriminator: nn.Module) -> None:
        super().__init__(config, image_shape, num_classes)
        self.generator = generator
        self.discriminator = discriminator
        self.init_ema()
        betas = tuple(config.betas)
        self._opts = {
            "g": torch.optim.Adam(self.generator.parameters(), lr=config.lr_g, betas=betas),
            "d": torch.optim.Adam(self.discriminator.parameters(), lr=config.lr_d, betas=betas),
        }
        self.register_buffer("diffaugment_flags", torch.zeros(len(OPERATIONS), dtype=torch.bool))
        #: The DiffAugment operations in use, in application order (``()`` when off). A Python
        #: copy of the buffer, so a training step on the GPU never reads it back from the device.
        self.diffaugment_ops: tuple[str, ...] = ()
        self.register_load_state_dict_post_hook(lambda module, _: module._read_flags())
        if config.diffaugment != "auto":
            self._set_policy(config.diffaugment)

    def _set_policy(self, policy: str) -> None:
        ops = parse_policy(policy)
        self.diffaugment_flags.copy_(torch.tensor([op in ops for op in OPERATIONS]))
        self._read_flags()

    def _read_flags(self) -> None:
        self.diffaugment_ops = tuple(op for op, on in zip(OPERATIONS, self.diffaugment_flags.tolist()) if on)

    def prepare(self, dataset_size: int) -> None:
        if self.config.diffaugment == "auto":
            self._set_policy(auto_diffaugment(dataset_size, self.image_shape[1]))

    def config_dict(self) -> dict[str, Any]:
        # The card records the policy that was used, not "auto".
        d = dataclasses.asdict(self.config)
        d["diffaugment"] = ",".join(op for op in ("translation", "cutout", "color")
                                    if op in self.diffaugment_ops) or "off"
        return d

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self._opts

    def _augment(self, images: torch.Tensor, rng: torch.Generator, ops: tuple[str, ...]) -> torch.Tensor:
        return diff_augment(images, ops, rng) if ops else images

    def phases(self, images, labels, rng, step, unlabeled=None):
        self.generator.train()
        self.discriminator.train()
        n = images.shape[0]
        shape = self.generator.noise_spec()["shape"]
        noise = torch.randn(n, *shape, generator=rng, device=rng.device).to(images.device)
        fake = self.generator(noise, labels)

        loss_d, d_stats = self._discriminator_loss(images, fake.detach(), labels, unlabeled, rng)
        yield Phase("d", loss_d, {"loss_d": loss_d.detach(), **d_stats})

        # The loop has stepped D: G's loss goes through the updated, frozen discriminator.
        self.discriminator.requires_grad_(False)
        try:
            loss_g, g_stats = self._generator_loss(fake, labels, unlabeled is not None, rng)
            yield Phase("g", loss_g, {"loss_g": loss_g.detach(), **g_stats})
        finally:
            self.discriminator.requires_grad_(True)

    def _discriminator_loss(self, images, fake, labels, unlabeled, rng):
        """D's loss on real ``images``, detached ``fake`` and optional ``unlabeled`` reals, in
        one discriminator call; and the logit means to log."""
        kind, ops, n = self.config.loss, self.diffaugment_ops, images.shape[0]
        if unlabeled is None:
            logits = self.discriminator(self._augment(torch.cat([images, fake]), rng, ops),
                                        torch.cat([labels, labels]))
            real_logits, fake_logits = logits[:n], logits[n:]
            return d_loss(kind, real_logits, fake_logits), {
                "d_real": real_logits.detach().mean(), "d_fake": fake_logits.detach().mean()}
        batch = self._augment(torch.cat([images, fake, unlabeled]), rng, ops)
        uncond, class_term = self.discriminator(batch, torch.cat([labels, labels]), split=True)
        logits = uncond[:2 * n] + class_term
        real_logits, fake_logits = logits[:n], logits[n:]
        unlabeled_real, unlabeled_fake = uncond[2 * n:], uncond[n:2 * n]
        unlabeled_loss = d_loss(kind, unlabeled_real, unlabeled_fake)
        loss = d_loss(kind, real_logits, fake_logits) + self.config.unlabeled_weight * unlabeled_loss
        return loss, {
            "d_real": real_logits.detach().mean(), "d_fake": fake_logits.detach().mean(),
            "unlabeled_d_real": unlabeled_real.detach().mean(),
            "unlabeled_d_fake": unlabeled_fake.detach().mean(),
            "unlabeled_loss_d": unlabeled_loss.detach(),
        }

    def _generator_loss(self, fake, labels, semi_supervised: bool, rng):
        """G's loss through the frozen discriminator; with ``semi_supervised`` plus the weighted
        unconditional game's generator loss (reported as ``unlabeled_loss_g``)."""
        kind = self.config.loss
        augmented = self._augment(fake, rng, self.diffaugment_ops)
        if not semi_supervised:
            return g_loss(kind, self.discriminator(augmented, labels)), {}
        uncond, class_term = self.discriminator(augmented, labels, split=True)
        unlabeled_loss = g_loss(kind, uncond)
        loss = g_loss(kind, uncond + class_term) + self.config.unlabeled_weight * unlabeled_loss
        return loss, {"unlabeled_loss_g": unlabeled_loss.detach()}
