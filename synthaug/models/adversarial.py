"""The adversarial training step shared by the GAN families (``gan``, ``dcgan``).

A family subclasses :class:`AdversarialTrainer`, builds its generator and a class-conditional
discriminator ``D(images, labels) -> logits[N]`` and hands them to ``__init__``. The step:
one discriminator call on ``cat([real, fake])`` (batchnorm sees one batch, which is also what
DistributedDataParallel needs), then one generator update through the frozen discriminator,
then the EMA update of the generator. DiffAugment, when on, transforms real and fake alike
before every discriminator call.

The config of such a family must provide ``latent_dim``, ``loss`` (``hinge`` |
``nonsaturating``), ``lr_g``, ``lr_d``, ``betas``, ``ema_decay`` and ``diffaugment`` (one of
:data:`~synthaug.models.diffaugment.POLICIES`).

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

from .base import ConditionalGenerator, GeneratorTrainer
from .diffaugment import OPERATIONS, diff_augment, parse_policy

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

    def forward(self, h: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.linear(h).squeeze(1) + (self.embed(labels) * h).sum(dim=1)


class AdversarialTrainer(GeneratorTrainer):
    """Generator + discriminator + EMA + two Adam optimizers + the shared adversarial step.

    The DiffAugment policy actually used is a boolean buffer (one flag per operation in
    :data:`~synthaug.models.diffaugment.OPERATIONS`): ``prepare`` resolves ``"auto"`` from the
    dataset size, and the checkpoint keeps the result, so a resumed run uses the same policy.
    """

    discriminator: nn.Module

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

    def training_step(self, images, labels, rng, step):
        self.generator.train()
        self.discriminator.train()
        ops = self.diffaugment_ops
        n = images.shape[0]
        shape = self.generator.noise_spec()["shape"]
        noise = torch.randn(n, *shape, generator=rng, device=rng.device).to(images.device)
        fake = self.generator(noise, labels)

        logits = self.discriminator(self._augment(torch.cat([images, fake.detach()]), rng, ops),
                                    torch.cat([labels, labels]))
        real_logits, fake_logits = logits[:n], logits[n:]
        loss_d = d_loss(self.config.loss, real_logits, fake_logits)
        self._opts["d"].zero_grad(set_to_none=True)
        loss_d.backward()
        self._opts["d"].step()

        self.discriminator.requires_grad_(False)
        loss_g = g_loss(self.config.loss, self.discriminator(self._augment(fake, rng, ops), labels))
        self._opts["g"].zero_grad(set_to_none=True)
        loss_g.backward()
        self._opts["g"].step()
        self.discriminator.requires_grad_(True)

        self.update_ema(step, self.config.ema_decay)
        return {
            "loss_d": loss_d.item(), "loss_g": loss_g.item(),
            "d_real": real_logits.mean().item(), "d_fake": fake_logits.mean().item(),
        }
