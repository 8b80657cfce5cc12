"""Conditional GAN (Mirza & Osindero 2014): fully connected generator and discriminator.

Generator: the noise and a label embedding are concatenated and go through ``g_layers`` hidden
layers (linear, batchnorm, ReLU) to one linear layer with a sigmoid that emits every pixel.
Discriminator: the flattened image through ``d_layers`` hidden layers (linear, LeakyReLU;
spectral normalisation by default) to a score plus a projection term ``<embed(y), h>``
(Miyato & Koyama 2018), a stronger way to condition D than concatenating the label. The
training step (hinge loss, EMA of G, DiffAugment, unlabelled images through D's label-free
term) is the one :mod:`.adversarial` shares with ``dcgan``. Being fully connected, it can emit any square size; sizes listed in
:attr:`GANGenerator.image_sizes`.

Example:
    >>> import torch
    >>> from synthaug.models import create_model
    >>> trainer = create_model("gan", {"g_width": 16, "d_width": 16}, (1, 8, 8), num_classes=3)
    >>> rng = torch.Generator().manual_seed(0)
    >>> losses = trainer.training_step(torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 0]), rng, 0)
    >>> sorted(losses)
    ['d_fake', 'd_real', 'loss_d', 'loss_g']
    >>> trainer.sampling_generator()(torch.randn(2, 64), torch.tensor([0, 2])).shape
    torch.Size([2, 1, 8, 8])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from .adversarial import AdversarialConfig, AdversarialTrainer, ProjectionHead
from .base import ConditionalGenerator
from .config import param
from .registry import register_model

__all__ = ["GANConfig", "GANGenerator", "GANTrainer", "MLPProjectionDiscriminator"]


@dataclass
class GANConfig(AdversarialConfig):
    latent_dim: int = param(64, architecture=True, low=1, high=4096, help="size of the normal noise vector")
    embed_dim: int = param(32, architecture=True, low=1, high=4096, help="size of the generator's label embedding")
    g_width: int = param(256, architecture=True, low=1, high=8192, help="units per generator hidden layer")
    d_width: int = param(256, architecture=True, low=1, high=8192, help="units per discriminator hidden layer")
    g_layers: int = param(2, architecture=True, low=1, high=8, help="generator hidden layers")
    d_layers: int = param(2, architecture=True, low=1, high=8, help="discriminator hidden layers")
    d_norm: str = param("spectral", architecture=True, choices=("spectral", "none"), help="normalisation of D's layers")


class GANGenerator(ConditionalGenerator):
    image_sizes = (8, 16, 28, 32, 64)

    def __init__(self, config: GANConfig, image_shape, num_classes: int) -> None:
        super().__init__(config, image_shape, num_classes)
        self.embed = nn.Embedding(num_classes, config.embed_dim)
        layers: list[nn.Module] = []
        width = config.latent_dim + config.embed_dim
        for _ in range(config.g_layers):
            # No bias before batchnorm: it would be cancelled by the mean subtraction.
            layers += [nn.Linear(width, config.g_width, bias=False), nn.BatchNorm1d(config.g_width),
                       nn.ReLU(inplace=True)]
            width = config.g_width
        layers.append(nn.Linear(width, math.prod(self.image_shape)))
        self.net = nn.Sequential(*layers)

    def noise_spec(self) -> dict:
        return {"name": "noise", "shape": [self.config.latent_dim], "distribution": "normal"}

    def forward(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.net(torch.cat([noise, self.embed(labels)], dim=1))
        return torch.sigmoid(h).reshape(-1, *self.image_shape)


class MLPProjectionDiscriminator(nn.Module):
    def __init__(self, config: GANConfig, image_shape, num_classes: int) -> None:
        super().__init__()
        sn = spectral_norm if config.d_norm == "spectral" else (lambda m: m)
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(image_shape)
        for _ in range(config.d_layers):
            layers += [sn(nn.Linear(width, config.d_width)), nn.LeakyReLU(0.2)]
            width = config.d_width
        self.features = nn.Sequential(*layers)
        self.head = ProjectionHead(width, num_classes, sn)

    def forward(self, images: torch.Tensor, labels: torch.Tensor, split: bool = False):
        return self.head(self.features(images * 2.0 - 1.0), labels, split)


@register_model("gan", config=GANConfig, generator=GANGenerator,
                description="conditional GAN with fully connected networks (Mirza & Osindero 2014)")
class GANTrainer(AdversarialTrainer):
    def __init__(self, config: GANConfig, image_shape, num_classes: int) -> None:
        generator = GANGenerator(config, image_shape, num_classes)
        discriminator = MLPProjectionDiscriminator(config, image_shape, num_classes)
        super().__init__(config, image_shape, num_classes, generator, discriminator)
