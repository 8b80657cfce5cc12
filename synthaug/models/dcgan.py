"""Class-conditional DCGAN (Radford et al. 2015) with a projection discriminator.

Generator: the noise and a label embedding are projected to a 4x4 map, then fractionally
strided convolutions with batchnorm and ReLU double the resolution up to the image size; a
tanh output is mapped to [0, 1]. Discriminator: strided convolutions with LeakyReLU (spectral
normalisation by default, batchnorm as the original's option), summed features, and a
projection term ``<embed(y), h>`` (Miyato & Koyama 2018) that makes it class-aware.

Example:
    >>> import torch
    >>> from synthaug.models import create_model
    >>> trainer = create_model("dcgan", {"g_width": 8, "d_width": 8}, (1, 8, 8), num_classes=3)
    >>> rng = torch.Generator().manual_seed(0)
    >>> losses = trainer.training_step(torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 0]), rng, 0)
    >>> sorted(losses)
    ['d_fake', 'd_real', 'loss_d', 'loss_g']
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from .adversarial import AdversarialConfig, AdversarialTrainer, ProjectionHead
from .base import ConditionalGenerator
from .config import param
from .widths import default_width, pyramid_widths
from .registry import register_model

__all__ = ["DCGANConfig", "DCGANGenerator", "DCGANTrainer", "ProjectionDiscriminator"]


@dataclass
class DCGANConfig(AdversarialConfig):
    latent_dim: int = param(64, architecture=True, low=1, high=4096, help="size of the normal noise vector")
    embed_dim: int = param(32, architecture=True, low=1, high=4096, help="size of the generator's label embedding")
    g_width: int = param(64, architecture=True, low=1, high=4096, help="generator channels at full resolution")
    d_width: int = param(64, architecture=True, low=1, high=4096, help="discriminator channels at full resolution")
    d_norm: str = param("spectral", architecture=True, choices=("spectral", "batch"))



class DCGANGenerator(ConditionalGenerator):
    image_sizes = (8, 16, 32, 64)

    def __init__(self, config: DCGANConfig, image_shape, num_classes: int) -> None:
        super().__init__(config, image_shape, num_classes)
        channels, size, _ = self.image_shape
        widths = pyramid_widths(config.g_width, size)
        self.embed = nn.Embedding(num_classes, config.embed_dim)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(config.latent_dim + config.embed_dim, widths[0], 4, 1, 0, bias=False),
            nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True),
        ]
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        layers += [nn.Conv2d(widths[-1], channels, 3, 1, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def noise_spec(self) -> dict:
        return {"name": "noise", "shape": [self.config.latent_dim], "distribution": "normal"}

    def forward(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = torch.cat([noise, self.embed(labels)], dim=1)
        return self.net(h[:, :, None, None]) * 0.5 + 0.5


class ProjectionDiscriminator(nn.Module):
    def __init__(self, config: DCGANConfig, image_shape, num_classes: int) -> None:
        super().__init__()
        channels, size, _ = image_shape
        widths = pyramid_widths(config.d_width, size)[::-1]
        sn = spectral_norm if config.d_norm == "spectral" else (lambda m: m)
        layers: list[nn.Module] = [sn(nn.Conv2d(channels, widths[0], 3, 1, 1)), nn.LeakyReLU(0.2)]
        for c_in, c_out in zip(widths, widths[1:]):
            layers.append(sn(nn.Conv2d(c_in, c_out, 4, 2, 1)))
            if config.d_norm == "batch":
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.LeakyReLU(0.2))
        layers += [sn(nn.Conv2d(widths[-1], widths[-1], 3, 1, 1)), nn.LeakyReLU(0.2)]
        self.features = nn.Sequential(*layers)
        self.head = ProjectionHead(widths[-1], num_classes, sn)

    def forward(self, images: torch.Tensor, labels: torch.Tensor, split: bool = False):
        return self.head(self.features(images * 2.0 - 1.0).sum(dim=(2, 3)), labels, split)


@register_model("dcgan", config=DCGANConfig, generator=DCGANGenerator,
                description="class-conditional DCGAN with a projection discriminator")
class DCGANTrainer(AdversarialTrainer):
    @classmethod
    def size_defaults(cls, image_shape, dataset_size: int) -> dict:
        width = default_width(image_shape[1])
        return {"g_width": width, "d_width": width}

    def __init__(self, config: DCGANConfig, image_shape, num_classes: int) -> None:
        generator = DCGANGenerator(config, image_shape, num_classes)
        discriminator = ProjectionDiscriminator(config, image_shape, num_classes)
        super().__init__(config, image_shape, num_classes, generator, discriminator)
