"""Autoregressive sampling for :mod:`synthaug.models.pixelrnn`: naive and cached.

Both draw sub-pixel ``(i, j, c)`` (raster order, then R -> G -> B) by inverse CDF from the
uniform draw ``noise[:, c, i, j]``: ``level = #{k : cdf_k < u}``, clamped to ``levels - 1``.

* :func:`sample_naive` reruns the whole network on the canvas once per sub-pixel
  (``H * W * C`` full passes, each ``H`` Row LSTM steps). Kept as the reference that the cache
  is tested against, and for the benchmark.
* :func:`sample_cached` computes only the new pixel's column through the network. A Row LSTM
  layer at ``(i, j)`` needs its input at ``(i, j-k+1 .. j)`` (the layer below, this row: cached
  as it is produced) and its own previous-row state at ``(i-1, j-1 .. j+1)`` (cached when a row
  ends); the first masked convolution needs the canvas rows ``i-p .. i`` around ``j``. So a step
  costs ``O(layers * hidden^2 * kernel)`` instead of a full pass.

The cached step is written once, with tensor indices only (``index_select`` to read a window,
``torch.where`` with a one-hot mask to write), so the same function runs in a Python loop in
eager mode and as the body of ``torch._higher_order_ops.while_loop`` when exported: the ONNX
graph is one ``Loop`` over the sub-pixels and needs no PyTorch to sample.

Example:
    >>> import torch
    >>> from synthaug.models import create_generator
    >>> g = create_generator("pixelrnn", {"hidden": 8, "layers": 1, "levels": 4, "input_kernel": 3},
    ...                      (1, 8, 8), num_classes=2).eval()
    >>> noise, labels = torch.rand(2, 1, 8, 8), torch.tensor([0, 1])
    >>> torch.equal(sample_cached(g, noise, labels), sample_naive(g, noise, labels))
    True
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:  # pragma: no cover
    from .pixelrnn import PixelRNNGenerator

__all__ = ["CachedSampler", "inverse_cdf", "lstm_cell", "sample_cached", "sample_loop", "sample_naive"]


def inverse_cdf(logits: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Levels ``[B]`` (int64) drawn from ``softmax(logits[B, levels])`` with uniforms ``u[B]``."""
    cdf = torch.cumsum(torch.softmax(logits, dim=-1), dim=-1)
    return (cdf < u[:, None]).sum(dim=-1).clamp(max=logits.shape[-1] - 1)


@torch.no_grad()
def sample_naive(g: PixelRNNGenerator, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Images ``[B, C, H, W]``: the full network once per sub-pixel (reference, slow)."""
    channels, height, width = g.image_shape
    image = torch.zeros(noise.shape[0], channels, height, width, device=noise.device)
    for i in range(height):
        for j in range(width):
            for c in range(channels):
                logits = g.logits(image, labels)[:, c, :, i, j]
                level = inverse_cdf(logits, noise[:, c, i, j])
                image[:, c, i, j] = level.float() / (g.levels - 1)
    return image


class CachedSampler:
    """The cached sampling loop of one generator for one batch of labels.

    ``init_state()`` -> carried tensors; ``step(*state)`` -> the next state (one sub-pixel);
    ``image(state)`` -> the images. Loop-invariant tensors (the noise, masked weights, label
    embeddings, index ranges) are computed once here and closed over by ``step``.
    """

    def __init__(self, g: PixelRNNGenerator, noise: torch.Tensor, labels: torch.Tensor) -> None:
        self.g = g
        channels, height, width = g.image_shape
        self.shape = (channels, height, width)
        self.total = channels * height * width
        dev = labels.device
        w0, b0 = g.input_conv_weight()
        self.pad = g.pad
        self.w0 = w0.flatten(1)  # [h, C * (p+1) * k]
        self.bemb0 = b0 + g.embed_in(labels)  # [B, h]
        self.rows0 = torch.arange(self.pad + 1, device=dev)
        self.cols0 = torch.arange(g.config.input_kernel, device=dev)
        self.layers = []
        for layer in g.rnn:
            w_in, w_ss = layer.weights()
            self.layers.append((w_in.flatten(1), layer.bias + layer.embed(labels), w_ss.flatten(1)))
        k_row, k_state = g.config.row_kernel, g.config.state_kernel
        self.k_row, self.q = k_row, k_state // 2
        self.row_taps = torch.arange(k_row, device=dev)
        self.state_taps = torch.arange(k_state, device=dev)
        self.col_row = torch.arange(width + k_row - 1, device=dev)
        self.col_state = torch.arange(width + 2 * self.q, device=dev)
        self.col = torch.arange(width, device=dev)
        self.chan = torch.arange(channels, device=dev)
        self.canvas_rows = torch.arange(height + self.pad, device=dev)
        self.canvas_cols = torch.arange(width + 2 * self.pad, device=dev)
        self.rows = torch.arange(height, device=dev)
        self.head = g.head_weights()
        self.noise = noise.reshape(noise.shape[0], self.total)

    def init_state(self) -> tuple[torch.Tensor, ...]:
        channels, height, width = self.shape
        n, h, dev = self.noise.shape[0], self.g.config.hidden, self.noise.device
        zeros = lambda *s: torch.zeros(n, *s, device=dev)  # noqa: E731
        state = [torch.zeros((), dtype=torch.int64, device=dev),
                 zeros(channels, height + self.pad, width + 2 * self.pad),  # canvas, scaled to [-1, 1]
                 zeros(channels, height, width)]  # image in [0, 1]
        for _ in self.layers:
            state += [zeros(h, width + self.k_row - 1),  # this layer's input, current row
                      zeros(h, width + 2 * self.q), zeros(h, width + 2 * self.q),  # h: previous, current row
                      zeros(h, width), zeros(h, width)]  # c: previous, current row
        return tuple(state)

    def image(self, state: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return state[2]

    def step(self, t: torch.Tensor, canvas: torch.Tensor, image: torch.Tensor,
             *layer_state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        channels, height, width = self.shape
        c = t % channels
        j = (t // channels) % width
        i = t // (channels * width)
        n = canvas.shape[0]

        # First layer: masked (p+1) x k convolution over the canvas rows i-p .. i around j.
        win = canvas.index_select(2, i + self.rows0).index_select(3, j + self.cols0)
        x = F.linear(win.reshape(n, -1), self.w0) + self.bemb0

        new_state: list[torch.Tensor] = []
        at_row = (self.col_row == j + self.k_row - 1)[None, None]
        at_state = (self.col_state == j + self.q)[None, None]
        at_col = (self.col == j)[None, None]
        row_end = (j == width - 1) & (c == channels - 1)
        for (w_in, bemb, w_ss), (row_in, h_prev, h_cur, c_prev, c_cur) in zip(
                self.layers, _chunks(layer_state, 5)):
            row_in = torch.where(at_row, x[:, :, None], row_in)
            xw = row_in.index_select(2, j + self.row_taps)
            sw = h_prev.index_select(2, j + self.state_taps)
            gates = F.linear(xw.reshape(n, -1), w_in) + bemb + F.linear(sw.reshape(n, -1), w_ss)
            cp = c_prev.index_select(2, j.reshape(1)).squeeze(2)
            hn, cn = lstm_cell(gates, cp)
            h_cur = torch.where(at_state, hn[:, :, None], h_cur)
            c_cur = torch.where(at_col, cn[:, :, None], c_cur)
            x = x + hn
            # When the row is complete it becomes the previous row of the next one.
            new_state += [row_in, torch.where(row_end, h_cur, h_prev), h_cur,
                          torch.where(row_end, c_cur, c_prev), c_cur]

        logits = self.g.head(x, self.head).reshape(n, channels, -1).index_select(1, c.reshape(1)).squeeze(1)
        u = self.noise.index_select(1, (c * (height * width) + i * width + j).reshape(1)).squeeze(1)
        value = inverse_cdf(logits, u).float() / (self.g.levels - 1)
        value = value[:, None, None, None]
        at_canvas = ((self.chan == c)[:, None, None] & (self.canvas_rows == i + self.pad)[None, :, None]
                     & (self.canvas_cols == j + self.pad)[None, None, :])
        at_image = ((self.chan == c)[:, None, None] & (self.rows == i)[None, :, None]
                    & (self.col == j)[None, None, :])
        canvas = torch.where(at_canvas, value * 2 - 1, canvas)
        image = torch.where(at_image, value, image)
        return (t + 1, canvas, image, *new_state)


def lstm_cell(gates: torch.Tensor, c_prev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM update; ``gates`` holds (input, forget, output, candidate) along the last dim."""
    i, f, o, g = gates.chunk(4, dim=-1)
    c = torch.sigmoid(f) * c_prev + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def _chunks(items, size):
    return [items[k:k + size] for k in range(0, len(items), size)]


@torch.no_grad()
def sample_cached(g: PixelRNNGenerator, noise: torch.Tensor, labels: torch.Tensor,
                  progress: bool = True) -> torch.Tensor:
    """Images ``[B, C, H, W]`` with cached row states, in a Python loop (eager).

    A tqdm bar on stderr appears only when sampling takes more than a few seconds.
    """
    sampler = CachedSampler(g, noise, labels)
    state = sampler.init_state()
    channels, height, width = g.image_shape
    per_row = channels * width
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=height, desc="sample pixelrnn", unit="row", file=sys.stderr, delay=3.0, leave=False)
    try:
        for t in range(sampler.total):
            state = sampler.step(*state)
            if bar is not None and (t + 1) % per_row == 0:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return sampler.image(state)


def sample_loop(g: PixelRNNGenerator, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The cached sampler as one ``while_loop``: exports to a single ONNX ``Loop``."""
    from torch._higher_order_ops.while_loop import while_loop

    sampler = CachedSampler(g, noise, labels)
    total = sampler.total

    def cond(t, *rest):
        return t < total

    state = while_loop(cond, sampler.step, sampler.init_state())
    return sampler.image(state)
