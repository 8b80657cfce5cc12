"""Class-conditional PixelRNN (van den Oord et al. 2016) with Row LSTM layers.

Architecture: a masked ``(p+1) x k`` convolution (mask A: a sub-pixel never sees itself) over
the rows above and the pixels to the left, then ``layers`` residual Row LSTM layers (an
input-to-state convolution along the row, causal, mask B at the centre tap; a state-to-state
convolution over the previous row's hidden state), then two masked 1x1 layers (mask B) giving a
softmax over ``levels`` intensity levels per sub-pixel. Colour images are modelled R -> G -> B:
hidden units are split into one group per channel and the centre taps only connect a group to
earlier ones (mask A) or to itself and earlier ones (mask B). The label enters every layer as an
embedding added to the first convolution and to each layer's gates (as in conditional PixelCNN).

Inputs in [0, 1] are quantised to ``level = round(x * (levels - 1))``; images come out as
``level / (levels - 1)``. Sampling is deterministic given ``noise``: one uniform draw per
sub-pixel, used by inverse CDF (see :mod:`synthaug.models.pixelrnn_sampling` for the cached
sampler and the one-graph ONNX ``Loop``).

Unlabelled images (``fit --unlabeled``) are trained through the same network with a learned
"no label" embedding in place of a label's (:class:`NoLabelEmbedding`, kept in the trainer so
the generator's state dict and exported files keep their shapes; sampling never uses it).

Example:
    >>> import torch
    >>> from synthaug.models import create_model
    >>> cfg = {"hidden": 8, "layers": 1, "levels": 4, "input_kernel": 3}
    >>> trainer = create_model("pixelrnn", cfg, (1, 8, 8), num_classes=3)
    >>> rng = torch.Generator().manual_seed(0)
    >>> sorted(trainer.training_step(torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 0]), rng, 0))
    ['bits_per_dim', 'loss']
    >>> trainer.sampling_generator()(torch.rand(2, 1, 8, 8), torch.tensor([0, 2])).shape
    torch.Size([2, 1, 8, 8])
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SynthaugError
from .base import ConditionalGenerator, GeneratorTrainer, Phase, accept_fewer_param_groups, keep_missing_on_load
from .config import param
from .pixelrnn_sampling import lstm_cell, sample_cached, sample_loop, sample_naive
from .registry import register_model

__all__ = ["NoLabelEmbedding", "PixelRNNConfig", "PixelRNNGenerator", "PixelRNNTrainer", "RowLSTM"]

_ODD = tuple(range(1, 16, 2))


@dataclass
class PixelRNNConfig:
    hidden: int = param(32, architecture=True, low=1, high=1024, help="hidden units per Row LSTM layer")
    layers: int = param(2, architecture=True, low=1, high=16, help="Row LSTM layers")
    levels: int = param(256, architecture=True, low=2, high=256, help="intensity levels per sub-pixel (softmax size)")
    input_kernel: int = param(5, architecture=True, choices=_ODD, help="width of the first masked convolution")
    row_kernel: int = param(3, architecture=True, low=1, high=15, help="input-to-state taps: this pixel and those to its left")
    state_kernel: int = param(3, architecture=True, choices=_ODD, help="state-to-state taps over the previous row")
    lr: float = param(2e-3, low=1e-7, high=1.0)
    grad_clip: float = param(1.0, low=0.0, high=1e6, help="max gradient norm (0: off)")
    ema_decay: float = param(0.995, low=0.0, high=1.0)
    dropout: float = param(0.1, low=0.0, high=0.9, help="dropout after each layer in training")
    # Unlabelled images (``fit --unlabeled``) are trained with a learned "no label" embedding.
    unlabeled_weight: float = param(1.0, low=0.0, high=100.0,
                                    help="weight of the unlabelled images' NLL beside the labelled one")
    label_dropout: float = param(0.0, low=0.0, high=0.9,
                                 help="share of labelled images trained with the no-label embedding instead")


def _groups(units: int, channels: int) -> torch.Tensor:
    """Colour group (0 = R, 1 = G, 2 = B) of each of ``units`` hidden units: contiguous blocks."""
    return torch.arange(units) * channels // units


def _centre_mask(out_groups: torch.Tensor, in_groups: torch.Tensor, strict: bool) -> torch.Tensor:
    """``[out, in]``: may output group a see input group b at the same pixel (A: b < a, B: b <= a)."""
    return (in_groups[None, :] < out_groups[:, None]) if strict else (in_groups[None, :] <= out_groups[:, None])


class RowLSTM(nn.Module):
    """One residual Row LSTM layer: ``x + h`` with ``h`` computed row by row, top to bottom."""

    def __init__(self, hidden: int, channels: int, num_classes: int, row_kernel: int, state_kernel: int) -> None:
        super().__init__()
        groups = _groups(hidden, channels)
        self.w_in = nn.Parameter(torch.empty(4 * hidden, hidden, row_kernel))
        self.w_ss = nn.Parameter(torch.empty(4 * hidden, hidden, state_kernel))
        self.bias = nn.Parameter(torch.zeros(4 * hidden))
        self.embed = nn.Embedding(num_classes, 4 * hidden)
        nn.init.kaiming_uniform_(self.w_in, a=math.sqrt(5))
        nn.init.kaiming_uniform_(self.w_ss, a=math.sqrt(5))
        with torch.no_grad():
            self.bias[hidden:2 * hidden] = 1.0  # forget gate open at the start
        mask = torch.ones(4 * hidden, hidden, row_kernel)
        mask[:, :, -1] = _centre_mask(groups.repeat(4), groups, strict=False)  # mask B at this pixel
        self.register_buffer("mask", mask, persistent=False)
        self.q = state_kernel // 2

    def weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.w_in * self.mask, self.w_ss

    def forward(self, x: torch.Tensor, label_gates: torch.Tensor) -> torch.Tensor:
        """``x [N, H, W, hidden]`` (channels last), ``label_gates [N, 4 * hidden]`` (the label's
        embedding, or the trainer's "no label" vector) -> ``x + h``, same shape."""
        w_in, w_ss = self.weights()
        k = w_in.shape[-1]
        # Input-to-state for every row at once (as im2col + matmul: the same dot products the
        # cached sampler takes per pixel); then the recurrence runs over the rows.
        bemb = self.bias + label_gates
        windows = F.pad(x, (0, 0, k - 1, 0)).unfold(2, k, 1)  # [N, H, W, hidden, k]
        in2s = F.linear(windows.flatten(3), w_in.flatten(1)) + bemb[:, None, None, :]
        n, height, width, hidden = x.shape
        h = x.new_zeros(n, width, hidden)
        c = x.new_zeros(n, width, hidden)
        w_ss = w_ss.flatten(1)
        rows = []
        for i in range(height):
            prev = F.pad(h, (0, 0, self.q, self.q)).unfold(1, 2 * self.q + 1, 1)  # [N, W, hidden, s]
            h, c = lstm_cell(in2s[:, i] + F.linear(prev.flatten(2), w_ss), c)
            rows.append(h)
        return x + torch.stack(rows, dim=1)


class PixelRNNGenerator(ConditionalGenerator):
    """``forward(noise[N, C, H, W] uniform, labels[N]) -> images``: autoregressive sampling."""

    image_sizes = (8, 16, 28, 32, 64)
    #: ONNX parity criterion (see exporters.onnx.export): share of sub-pixels sampled identically.
    #: Exact equality is the rule in practice, but a last-bit float difference between torch and
    #: ONNX Runtime at a CDF boundary flips a level and changes what is sampled after it.
    parity_min_equal: ClassVar[float] = 0.999

    def __init__(self, config: PixelRNNConfig, image_shape, num_classes: int) -> None:
        super().__init__(config, image_shape, num_classes)
        channels = self.image_shape[0]
        h, k = config.hidden, config.input_kernel
        self.levels = config.levels
        self.pad = k // 2
        groups = _groups(h, channels)
        self.w0 = nn.Parameter(torch.empty(h, channels, self.pad + 1, k))
        nn.init.kaiming_uniform_(self.w0, a=math.sqrt(5))
        self.b0 = nn.Parameter(torch.zeros(h))
        self.embed_in = nn.Embedding(num_classes, h)
        mask0 = torch.ones(h, channels, self.pad + 1, k)
        mask0[:, :, -1, self.pad + 1:] = 0  # nothing right of the pixel on its own row
        mask0[:, :, -1, self.pad] = _centre_mask(groups, torch.arange(channels), strict=True)  # mask A
        self.register_buffer("mask0", mask0, persistent=False)
        self.rnn = nn.ModuleList(RowLSTM(h, channels, num_classes, config.row_kernel, config.state_kernel)
                                 for _ in range(config.layers))
        self.out1 = nn.Linear(h, h)
        self.out2 = nn.Linear(h, channels * config.levels)
        out_groups = torch.arange(channels).repeat_interleave(config.levels)
        self.register_buffer("mask1", _centre_mask(groups, groups, strict=False).float(), persistent=False)
        self.register_buffer("mask2", _centre_mask(out_groups, groups, strict=False).float(), persistent=False)

    def noise_spec(self) -> dict:
        return {"name": "noise", "shape": list(self.image_shape), "distribution": "uniform_0_1"}

    def input_conv_weight(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.w0 * self.mask0, self.b0

    def head_weights(self) -> tuple[torch.Tensor, ...]:
        return self.out1.weight * self.mask1, self.out1.bias, self.out2.weight * self.mask2, self.out2.bias

    @staticmethod
    def head(x: torch.Tensor, weights: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Features ``[..., hidden]`` -> logits ``[..., C * levels]`` (channel-major)."""
        w1, b1, w2, b2 = weights
        return F.linear(torch.relu(F.linear(torch.relu(x), w1, b1)), w2, b2)

    def label_embeddings(self, labels: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """What the labels add: to the first convolution ``[N, hidden]``, to each layer's gates
        ``[N, 4 * hidden]``."""
        return self.embed_in(labels), [layer.embed(labels) for layer in self.rnn]

    def logits(self, images: torch.Tensor, labels: torch.Tensor, dropout=None,
               conditioning: tuple[torch.Tensor, list[torch.Tensor]] | None = None) -> torch.Tensor:
        """Logits ``[N, C, levels, H, W]`` of every sub-pixel given the ones before it (one pass).

        ``dropout``: training only, a function applied to the features after each layer.
        ``conditioning``: training only, vectors shaped like :meth:`label_embeddings` used instead
        of the labels' (the trainer's "no label" rows for unlabelled images)."""
        n, channels, height, width = images.shape
        label_in, label_gates = self.label_embeddings(labels) if conditioning is None else conditioning
        w0, b0 = self.input_conv_weight()
        x = F.pad(images * 2 - 1, (self.pad, self.pad, self.pad, 0))
        windows = x.unfold(2, self.pad + 1, 1).unfold(3, w0.shape[-1], 1)  # [N, C, H, W, p+1, k]
        windows = windows.permute(0, 2, 3, 1, 4, 5).flatten(3)
        x = F.linear(windows, w0.flatten(1)) + (b0 + label_in)[:, None, None, :]
        for layer, gates in zip(self.rnn, label_gates):
            x = layer(x, gates)  # [N, H, W, hidden]
            if dropout is not None:
                x = dropout(x)
        out = self.head(x, self.head_weights())  # [N, H, W, C * levels]
        return out.reshape(n, height, width, channels, self.levels).permute(0, 3, 4, 1, 2)

    def quantise(self, images: torch.Tensor) -> torch.Tensor:
        """Levels (int64) of images in [0, 1]."""
        return torch.round(images.clamp(0, 1) * (self.levels - 1)).long()

    def forward(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if torch.compiler.is_exporting() or torch.compiler.is_compiling():
            return sample_loop(self, noise, labels)  # one ONNX Loop
        return sample_cached(self, noise, labels)

    def sample(self, noise: torch.Tensor, labels: torch.Tensor, method: str = "cached") -> torch.Tensor:
        """Sample with ``method`` ``"cached"`` (default), ``"loop"`` (the exported graph's
        ``while_loop``) or ``"naive"`` (full network per sub-pixel): same images for the same noise."""
        fns = {"cached": sample_cached, "loop": sample_loop, "naive": sample_naive}
        if method not in fns:
            raise SynthaugError(f"unknown sampling method {method!r}: expected one of {', '.join(fns)}")
        with torch.no_grad():
            return fns[method](self, noise, labels)


class NoLabelEmbedding(nn.Module):
    """The "no label" row that the generator's embeddings lack: ``input [hidden]`` for the first
    convolution, ``gates [layers, 4 * hidden]`` for the Row LSTM layers, drawn like an embedding
    row. It lives in the trainer: the generator's state dict (``generator.safetensors``, ONNX)
    keeps its shape, and sampling, always conditional, never uses it."""

    def __init__(self, hidden: int, layers: int) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.randn(hidden))
        self.gates = nn.Parameter(torch.randn(layers, 4 * hidden))


@register_model("pixelrnn", config=PixelRNNConfig, generator=PixelRNNGenerator,
                description="class-conditional PixelRNN (Row LSTM), discrete softmax, cached sampling")
class PixelRNNTrainer(GeneratorTrainer):
    """Maximum likelihood: cross-entropy of every sub-pixel's level, reported in bits/dim.

    Unlabelled images (label dropout, as in classifier-free guidance) go through the same network
    with the "no label" embedding (:class:`NoLabelEmbedding`) in place of a label's, so the
    shared weights learn from every image; ``label_dropout`` also trains some labelled images
    that way. The loss is ``NLL(labelled) + unlabeled_weight * NLL(unlabelled)``, each a mean
    per sub-pixel."""

    default_holdout = 0.1
    uses_unlabeled = True

    def __init__(self, config: PixelRNNConfig, image_shape, num_classes: int) -> None:
        super().__init__(config, image_shape, num_classes)
        self.generator = PixelRNNGenerator(config, image_shape, num_classes)
        self.init_ema()
        # Built last, so the generator starts from the same seed-drawn weights as before.
        self.no_label = NoLabelEmbedding(config.hidden, config.layers)
        keep_missing_on_load(self.no_label)
        opt = torch.optim.Adam(self.generator.parameters(), lr=config.lr)
        opt.add_param_group({"params": list(self.no_label.parameters())})
        accept_fewer_param_groups(opt)
        self._opts = {"g": opt}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self._opts

    @staticmethod
    def nll_nats(g: PixelRNNGenerator, images: torch.Tensor, labels: torch.Tensor, dropout=None,
                 conditioning=None, per_image: bool = False) -> torch.Tensor:
        """Mean negative log-likelihood per sub-pixel, in nats: over the batch, or ``[N]`` one per
        image with ``per_image``. ``conditioning``: see :meth:`PixelRNNGenerator.logits`."""
        target = g.quantise(images)
        logits = g.logits(target.float() / (g.levels - 1), labels, dropout, conditioning)
        if per_image:
            return F.cross_entropy(logits.transpose(1, 2), target, reduction="none").flatten(1).mean(1)
        return F.cross_entropy(logits.transpose(1, 2), target)  # classes on dim 1

    def conditioning(self, labels: torch.Tensor, no_label: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The generator's label embeddings, with the "no label" vectors on rows where
        ``no_label[N]`` (bool) is set."""
        label_in, label_gates = self.generator.label_embeddings(labels)
        rows = no_label[:, None]
        return (torch.where(rows, self.no_label.input, label_in),
                [torch.where(rows, v, e) for v, e in zip(self.no_label.gates, label_gates)])

    def phases(self, images, labels, rng, step, unlabeled=None):
        self.generator.train()
        p = self.config.dropout

        def dropout(x: torch.Tensor) -> torch.Tensor:
            # Masks from ``rng`` (not torch's global RNG), so runs and resumes are reproducible.
            keep = torch.rand(x.shape, generator=rng, device=rng.device).to(x.device) >= p
            return x * keep / (1 - p)

        drop = dropout if p > 0 else None
        if unlabeled is None and self.config.label_dropout == 0:
            loss = self.nll_nats(self.generator, images, labels, drop)
            logs = {"bits_per_dim": loss.detach() / math.log(2)}
        else:
            loss, logs = self._loss_with_no_label(images, labels, unlabeled, rng, drop)
        # Clipped over the optimizer's parameters: the "no label" vectors have no gradient (and
        # so no part in the norm) on steps that do not use them.
        yield Phase("g", loss, {"loss": loss.detach(), **logs}, clip=self.config.grad_clip)

    def _loss_with_no_label(self, images, labels, unlabeled, rng, dropout):
        """``NLL(labelled) + unlabeled_weight * NLL(unlabelled)`` in one pass over both batches,
        unlabelled images (and a ``label_dropout`` share of labelled ones) with the "no label"
        embedding; and the terms to log in bits/dim."""
        n = images.shape[0]
        no_label = torch.zeros(n, dtype=torch.bool, device=images.device)
        if self.config.label_dropout > 0:
            draw = torch.rand(n, generator=rng, device=rng.device).to(images.device)
            no_label = draw < self.config.label_dropout
        if unlabeled is not None:
            images = torch.cat([images, unlabeled])
            labels = torch.cat([labels, labels.new_zeros(unlabeled.shape[0])])  # unused: no_label rows
            no_label = torch.cat([no_label, no_label.new_ones(unlabeled.shape[0])])
        nats = self.nll_nats(self.generator, images, labels, dropout, self.conditioning(labels, no_label),
                             per_image=True)
        labelled = nats[:n].mean()
        logs = {"bits_per_dim": labelled.detach() / math.log(2)}
        if unlabeled is None:
            return labelled, logs
        unlabelled = nats[n:].mean()
        logs["unlabeled_bits_per_dim"] = unlabelled.detach() / math.log(2)
        return labelled + self.config.unlabeled_weight * unlabelled, logs

    @torch.no_grad()
    def evaluate(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        g = self.sampling_generator()
        total, count = 0.0, 0
        for k in range(0, len(labels), 256):
            nats = self.nll_nats(g, images[k:k + 256], labels[k:k + 256])
            total += nats.item() * len(labels[k:k + 256])
            count += len(labels[k:k + 256])
        return {"test_bits_per_dim": total / max(count, 1) / math.log(2)}
