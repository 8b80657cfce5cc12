"""Conditional variational autoencoder (Kingma & Welling 2013; Sohn et al. 2015).

Encoder ``q(z | x, y)``: strided convolutions down to 4x4, flattened and joined with a label
embedding, to the mean and log-variance of a diagonal Gaussian. Decoder ``p(x | z, y)``: the
latent and a label embedding projected to a 4x4 map, then fractionally strided convolutions up
to the image size. The decoder is the deployable generator: ``forward(noise, labels)`` decodes
``noise ~ N(0, I)`` into the likelihood's mean image in [0, 1]; sampling and export use the EMA
copy of it. The encoder stays in the run's checkpoint: ``Run(path).trainer().reconstruct(...)``.

The loss is the negative ELBO per image, ``recon + kl_weight * kl`` in nats, with the weight
ramped from 0 to ``beta`` over ``kl_warmup`` steps (the decoder first learns to use the latent,
which keeps samples sharper). ``likelihood="gaussian"`` (default) learns one standard deviation
shared by all pixels (sigma-VAE, Rybkin et al. 2021), which balances the two terms by itself;
``"bernoulli"`` treats intensities as Bernoulli means (continuous cross-entropy). Measured on
digits:train at the defaults (3000 steps, CAS / real-data accuracy, one classifier seed):
gaussian 0.993 (the latent carries ~15 nats); bernoulli 0.920 (~1.6 nats: the label alone
explains most of the image, so samples of a class look alike); bernoulli with beta 0.3: 0.966.

The posterior's log-variance enters the loss bounded above by ``max_log_var`` (10: a posterior
standard deviation up to e^5 = 148 times the prior's). On 32x32 RGB photos the encoder's
log-variance swings far in the first steps (past 80 within 12 steps at width 64, where
``exp`` overflowed float32 and the loss became inf; up to 17 at width 32), while on digits it
stays within [-6.1, 0.3] over a default fit, so the bound changes nothing there. The learned
pixel sigma needs no bound: Adam moves its log by about ``lr`` per step (-0.1 by step 100).

Unlabelled images (``fit --unlabeled``) train it as the semi-supervised M2 of Kingma, Rezende,
Mohamed & Welling (2014): the label becomes a latent variable inferred by a classifier
``q(y | x)`` (:class:`VAEClassifier`, from the image alone; it lives in the trainer, so the
deployable decoder and its files are unchanged). With ``L(x, y) = recon + kl_weight * kl`` the
labelled loss, an unlabelled image costs

    U(x) = sum_y q(y|x) L(x, y) - H(q(y|x)) + log K        (log K: the uniform prior p(y))

(the negative of M2's bound on ``log p(x)``; logged as ``unlabeled_elbo = -U``), computed by
encoding and decoding the image once per candidate label, with one latent draw shared by its
labels. With more than ``unlabeled_classes`` classes the sum runs over ``q``'s most likely ones,
``q`` renormalised over them, so a step decodes at most ``unlabeled_classes`` times the batch.
The step minimises ``L(labelled) + U(unlabelled) + alpha * CE(q(y|x), y)`` over the labelled
batch, ``alpha = classifier_weight * C*H*W`` (M2 used ``alpha = 0.1 N`` on a summed bound; for
MNIST and 100 labels common implementations use about 50 per image, i.e. ~0.06 per pixel).
Without unlabelled images the classifier is neither run nor trained: the step is exactly the
plain conditional VAE's. Measured on digits (50 labels, the rest unlabelled, tiny widths, 1000
steps): q(y|x) reaches 89-91% held-out accuracy for classifier_weight 0.1-8 (the same classifier
on the 50 labels alone: 91%); with classifier_weight 0, from the unlabelled bound alone, 3 digit
classes with 3 labels each reach 79-93% (chance 33%).

Example:
    >>> import torch
    >>> from synthaug.models import create_model
    >>> trainer = create_model("vae", {"g_width": 8, "e_width": 8}, (1, 8, 8), num_classes=3)
    >>> images, labels = torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 0])
    >>> losses = trainer.training_step(images, labels, torch.Generator().manual_seed(0), 0)
    >>> sorted(losses)
    ['kl', 'kl_weight', 'loss', 'recon']
    >>> trainer.reconstruct(images, labels).shape
    torch.Size([4, 1, 8, 8])
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .base import ConditionalGenerator, GeneratorTrainer, Phase, accept_fewer_param_groups, keep_missing_on_load
from .config import param
from .widths import default_width, pyramid_widths
from .registry import register_model

__all__ = ["VAEClassifier", "VAEConfig", "VAEDecoder", "VAEEncoder", "VAETrainer"]

_EVAL_SEED = 1234


@dataclass
class VAEConfig:
    latent_dim: int = param(16, architecture=True, low=1, high=4096, help="size of the latent (the normal noise vector)")
    embed_dim: int = param(16, architecture=True, low=1, high=4096, help="size of the label embeddings")
    g_width: int = param(64, architecture=True, low=1, high=4096, help="decoder channels at full resolution")
    e_width: int = param(64, architecture=True, low=1, high=4096, help="encoder channels at full resolution")
    likelihood: str = param("gaussian", choices=("gaussian", "bernoulli"),
                            help="gaussian with a learned shared sigma, or bernoulli means")
    beta: float = param(1.0, low=0.0, high=100.0, help="final weight of the KL term")
    kl_warmup: int = param(500, low=0, high=10**7, help="steps over which the KL weight ramps up")
    lr: float = param(1e-3, low=1e-7, high=1.0)
    betas: tuple = param((0.9, 0.999), low=0.0, high=0.9999)
    ema_decay: float = param(0.999, low=0.0, high=1.0)
    max_log_var: float = param(
        10.0, low=0.0, high=80.0,
        help="upper bound on the encoder's log-variance in the loss (exp overflows float32 above 88.7); "
             "the gradient passes as if unbounded")
    # Semi-supervised M2 (``fit --unlabeled``); unused without unlabelled images.
    classifier_weight: float = param(
        0.5, low=0.0, high=1e4,
        help="weight of q(y|x)'s cross-entropy on labelled images per image dimension "
             "(M2's alpha = this * C*H*W)")
    classifier_width: int = param(32, architecture=True, low=1, high=4096, help="q(y|x) classifier channels at full resolution")
    unlabeled_classes: int = param(
        10, low=1, high=4096,
        help="labels summed over per unlabelled image: all if there are no more classes, "
             "else q(y|x)'s most likely ones")



class VAEDecoder(ConditionalGenerator):
    """``p(x | z, y)``; ``forward`` returns the mean image, :meth:`logits` its pre-sigmoid values."""

    image_sizes = (8, 16, 32, 64)

    def __init__(self, config: VAEConfig, image_shape, num_classes: int) -> None:
        super().__init__(config, image_shape, num_classes)
        channels, size, _ = self.image_shape
        widths = pyramid_widths(config.g_width, size)
        self.embed = nn.Embedding(num_classes, config.embed_dim)
        self.project = nn.Linear(config.latent_dim + config.embed_dim, widths[0] * 16)
        layers: list[nn.Module] = [nn.ReLU(inplace=True)]
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(widths[-1], channels, 3, 1, 1))
        self.net = nn.Sequential(*layers)
        self._width0 = widths[0]

    def noise_spec(self) -> dict:
        return {"name": "noise", "shape": [self.config.latent_dim], "distribution": "normal"}

    def logits(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.project(torch.cat([noise, self.embed(labels)], dim=1))
        return self.net(h.reshape(-1, self._width0, 4, 4))

    def forward(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(noise, labels))


class VAEEncoder(nn.Module):
    """``q(z | x, y)`` -> ``(mean, log_variance)``."""

    def __init__(self, config: VAEConfig, image_shape, num_classes: int) -> None:
        super().__init__()
        widths = pyramid_widths(config.e_width, image_shape[1])[::-1]
        self.features = _conv_features(image_shape[0], widths)
        self.embed = nn.Embedding(num_classes, config.embed_dim)
        self.head = nn.Sequential(nn.Linear(widths[-1] * 16 + config.embed_dim, 2 * widths[-1]),
                                  nn.LeakyReLU(0.2), nn.Linear(2 * widths[-1], 2 * config.latent_dim))

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.posterior(self.features(images * 2.0 - 1.0), labels)

    def posterior(self, features: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, log_variance)`` from the label-free image features and the labels: M2 reuses
        one image's features for every candidate label."""
        mean, log_var = self.head(torch.cat([features, self.embed(labels)], dim=1)).chunk(2, dim=1)
        return mean, log_var


def _conv_features(channels: int, widths: list[int]) -> nn.Sequential:
    """Strided convolutions from full resolution (``widths[0]`` channels) down to 4x4, flattened."""
    layers: list[nn.Module] = [nn.Conv2d(channels, widths[0], 3, 1, 1), nn.LeakyReLU(0.2)]
    for c_in, c_out in zip(widths, widths[1:]):
        layers += [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.LeakyReLU(0.2)]
    layers.append(nn.Flatten())
    return nn.Sequential(*layers)


class VAEClassifier(nn.Module):
    """M2's ``q(y | x)``: class logits from the image alone (images in [0, 1])."""

    def __init__(self, config: VAEConfig, image_shape, num_classes: int) -> None:
        super().__init__()
        widths = pyramid_widths(config.classifier_width, image_shape[1])[::-1]
        self.features = _conv_features(image_shape[0], widths)
        self.head = nn.Linear(widths[-1] * 16, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images * 2.0 - 1.0))


@register_model("vae", config=VAEConfig, generator=VAEDecoder,
                description="conditional variational autoencoder (Kingma & Welling 2013; Sohn et al. 2015)")
class VAETrainer(GeneratorTrainer):
    """Encoder, decoder (``generator``), its EMA copy, M2's classifier ``q(y | x)`` (trained only
    with unlabelled images), one Adam optimizer over all of them."""

    default_holdout: ClassVar[float] = 0.0
    uses_unlabeled = True

    def __init__(self, config: VAEConfig, image_shape, num_classes: int) -> None:
        super().__init__(config, image_shape, num_classes)
        self.generator = VAEDecoder(config, image_shape, num_classes)
        self.encoder = VAEEncoder(config, image_shape, num_classes)
        # log sigma of the Gaussian likelihood, shared by all pixels (unused for Bernoulli).
        self.log_sigma = nn.Parameter(torch.zeros(()))
        self.init_ema()
        params = [*self.encoder.parameters(), *self.generator.parameters()]
        if config.likelihood == "gaussian":
            params.append(self.log_sigma)
        # Built last, so the other networks start from the same seed-drawn weights as before M2.
        self.classifier = VAEClassifier(config, image_shape, num_classes)
        keep_missing_on_load(self.classifier)
        opt = torch.optim.Adam(params, lr=config.lr, betas=tuple(config.betas))
        opt.add_param_group({"params": list(self.classifier.parameters())})
        accept_fewer_param_groups(opt)
        self._opts = {"vae": opt}

    @classmethod
    def size_defaults(cls, image_shape, dataset_size: int) -> dict:
        width = default_width(image_shape[1])
        return {"g_width": width, "e_width": width}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self._opts

    def encode(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of ``q(z | images, labels)``; images in [0, 1]."""
        return self.encoder(images, labels)

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Decode the posterior mean of each image: images in [0, 1] -> images in [0, 1]."""
        mean, _ = self.encoder.eval()(images, labels)
        return self.generator.eval()(mean, labels)

    def kl_weight(self, step: int) -> float:
        warmup = self.config.kl_warmup
        return self.config.beta * (1.0 if warmup == 0 else min(1.0, (step + 1) / warmup))

    @torch.no_grad()
    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """M2's ``q(y | x)``: class probabilities ``[N, num_classes]`` of images in [0, 1]
        (meaningful only after training with unlabelled images)."""
        return torch.softmax(self.classifier.eval()(images), dim=1)

    def _image_terms(self, images, labels, eps, features=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruction NLL and KL of each image, ``[N]`` each, in nats. ``features``: the
        encoder's features of ``images`` when already computed."""
        if features is None:
            mean, log_var = self.encoder(images, labels)
        else:
            mean, log_var = self.encoder.posterior(features, labels)
        # Adam's first steps can throw the encoder's log-variance far out (above 80 within 12
        # steps on photos:train at the defaults), and exp() overflows float32 above 88.7: bound it
        # in the forward pass only. The gradient passes as if unbounded, so the KL term still
        # pulls an out-of-range output back (a plain clamp's zero gradient left them stuck out).
        # Below the bound the values, and so the losses, are exactly the unbounded ones.
        log_var = log_var + (log_var.clamp(max=self.config.max_log_var) - log_var).detach()
        z = mean + eps * torch.exp(0.5 * log_var)
        logits = self.generator.logits(z, labels)
        if self.config.likelihood == "bernoulli":
            nll = F.binary_cross_entropy_with_logits(logits, images, reduction="none")
        else:
            mu = torch.sigmoid(logits)
            nll = (0.5 * ((images - mu) * torch.exp(-self.log_sigma)) ** 2 + self.log_sigma
                   + 0.5 * math.log(2 * math.pi))
        kl = 0.5 * (mean.pow(2) + log_var.exp() - 1.0 - log_var).sum(1)
        return nll.flatten(1).sum(1), kl

    def _terms(self, images, labels, eps) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruction NLL and KL per image, in nats, averaged over the batch."""
        recon, kl = self._image_terms(images, labels, eps)
        return recon.mean(), kl.mean()

    def unlabeled_bound(self, images: torch.Tensor, eps: torch.Tensor, kl_weight: float
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """M2's bound for images without labels: ``(U, H)``, the batch means of
        ``U(x) = sum_y q(y|x) L(x, y) - H(q(y|x)) + log K`` (nats; ``L`` the labelled loss
        ``recon + kl_weight * kl``, ``log K`` from the uniform prior ``p(y)``) and of the entropy
        ``H``. The sum runs over ``unlabeled_classes`` labels: all of them, or ``q``'s most likely
        ones with ``q`` renormalised over them. ``eps[N, latent]``: one draw per image, shared by
        its candidate labels (their ELBOs are compared with the same noise)."""
        n, num_classes = images.shape[0], self.num_classes
        log_q = torch.log_softmax(self.classifier(images), dim=1)
        k = min(self.config.unlabeled_classes, num_classes)
        if k < num_classes:
            log_q, candidates = log_q.topk(k, dim=1)
            log_q = log_q - torch.logsumexp(log_q, dim=1, keepdim=True)
        else:
            candidates = torch.arange(num_classes, device=images.device).expand(n, -1)
        repeat = lambda t: t.repeat_interleave(k, dim=0)  # noqa: E731 - row i*k + j: image i, candidate j
        features = self.encoder.features(images * 2.0 - 1.0)  # label-free: once per image
        recon, kl = self._image_terms(repeat(images), candidates.reshape(-1), repeat(eps), repeat(features))
        loss_per_label = (recon + kl_weight * kl).reshape(n, k)
        q = log_q.exp()
        entropy = -(q * log_q).sum(1)
        bound = (q * loss_per_label).sum(1) - entropy + math.log(num_classes)
        return bound.mean(), entropy.mean()

    def phases(self, images, labels, rng, step, unlabeled=None):
        self.encoder.train()
        self.generator.train()
        eps = torch.randn(images.shape[0], self.config.latent_dim, generator=rng).to(images.device)
        recon, kl = self._terms(images, labels, eps)
        weight = self.kl_weight(step)
        loss = recon + weight * kl
        extra: dict[str, torch.Tensor] = {}
        if unlabeled is not None:
            loss, extra = self._add_unlabeled_terms(loss, images, labels, unlabeled, rng, weight)
        yield Phase("vae", loss, {"loss": loss.detach(), "recon": recon.detach(), "kl": kl.detach(),
                                  "kl_weight": weight, **extra})

    def _add_unlabeled_terms(self, loss, images, labels, unlabeled, rng, kl_weight):
        """M2 (Kingma et al. 2014): ``loss + U(unlabelled) + alpha * CE(q(y|x), y)`` on the
        labelled images, ``alpha = classifier_weight * C*H*W``; and the terms to log."""
        self.classifier.train()
        eps = torch.randn(unlabeled.shape[0], self.config.latent_dim, generator=rng).to(unlabeled.device)
        bound, entropy = self.unlabeled_bound(unlabeled, eps, kl_weight)
        classifier_loss = F.cross_entropy(self.classifier(images), labels)
        alpha = self.config.classifier_weight * math.prod(self.image_shape)
        total = loss + bound + alpha * classifier_loss
        return total, {"unlabeled_elbo": -bound.detach(), "unlabeled_entropy": entropy.detach(),
                       "classifier_loss": classifier_loss.detach()}

    @torch.no_grad()
    def evaluate(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        """Held-out negative ELBO (``beta`` = 1) and its two terms, nats per image."""
        self.encoder.eval()
        self.generator.eval()
        g = torch.Generator().manual_seed(_EVAL_SEED)  # the same draws at every checkpoint
        eps = torch.randn(images.shape[0], self.config.latent_dim, generator=g).to(images.device)
        recon, kl = self._terms(images, labels, eps)
        return {"test_neg_elbo": float(recon + kl), "test_recon": float(recon), "test_kl": float(kl)}
