"""Samplers: one interface over a torch module and an ONNX Runtime session.

All noise is drawn on the CPU from a seeded ``torch.Generator`` in :func:`draw_noise`, then
handed to the backend, so the same seed gives the same images on torch and on ONNX Runtime.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..card import GeneratorCard
from ..errors import SynthaugError, first_line
from .onnx_card import read_onnx_card

__all__ = ["draw_noise", "make_generator", "OnnxSampler", "Sampler", "TorchSampler"]


def draw_noise(spec: dict[str, Any], n: int, generator: torch.Generator,
               truncation: float | None = None) -> torch.Tensor:
    """``n`` samples of the noise the card's ``noise`` entry describes, float32 on the
    generator's device (the CPU for :meth:`Sampler.sample`, so seeds mean the same everywhere).

    ``truncation`` (normal noise only) draws from the normal truncated to ``[-t, t]`` (the
    "truncation trick": less diversity, fewer failed samples), by inverse CDF so each value is
    still one uniform draw.
    """
    shape = (n, *spec["shape"])
    if truncation is not None:
        if spec["distribution"] != "normal":
            raise SynthaugError(f"truncation applies to normal noise, this generator takes {spec['distribution']}")
        if not truncation > 0:
            raise SynthaugError(f"truncation: expected a positive threshold, got {truncation!r}")
        low = torch.special.ndtr(torch.tensor(-float(truncation), dtype=torch.float64))
        u = torch.rand(shape, generator=generator, dtype=torch.float64, device=generator.device)
        return torch.special.ndtri(low + u * (1 - 2 * low)).to(torch.float32)
    if spec["distribution"] == "normal":
        return torch.randn(shape, generator=generator, dtype=torch.float32, device=generator.device)
    if spec["distribution"] == "uniform_0_1":
        return torch.rand(shape, generator=generator, dtype=torch.float32, device=generator.device)
    raise SynthaugError(f"unknown noise distribution {spec['distribution']!r}: expected normal or uniform_0_1")


def make_generator(seed: int | None = None, generator: torch.Generator | None = None) -> torch.Generator:
    """The CPU generator every draw comes from: the one given, or a fresh one seeded by ``seed``
    (a random seed when ``None``)."""
    if generator is not None:
        if seed is not None:
            raise SynthaugError("expected either seed or generator, got both")
        return generator
    if seed is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
    return torch.Generator().manual_seed(int(seed))


class Sampler(abc.ABC):
    """Generates images of requested classes from a fitted generator.

    ``sample(labels, seed=...)`` returns float32 ``[N, C, H, W]`` in [0, 1] on the sampler's
    device. Subclasses implement :meth:`_generate` for one batch of noise and labels; see
    :class:`TorchSampler` for an example, and :func:`synthaug.load` to get one from a file.
    """

    card: GeneratorCard
    device: torch.device
    batch_size: int = 256
    #: Truncation threshold for normal noise (see :func:`draw_noise`); ``None`` for none.
    truncation: float | None = None

    def check_labels(self, labels: Any) -> torch.Tensor:
        """Labels as an int64 CPU tensor, each in ``0..num_classes-1``."""
        t = torch.as_tensor(labels).reshape(-1) if not isinstance(labels, torch.Tensor) else labels.reshape(-1)
        if t.numel() == 0:
            return torch.empty(0, dtype=torch.int64)
        if t.dtype.is_floating_point or t.dtype == torch.bool or t.is_complex():
            raise SynthaugError(f"expected integer class labels, got {t.dtype}")
        t = t.to("cpu", torch.int64)
        k = self.card.num_classes
        bad = t[(t < 0) | (t >= k)]
        if bad.numel():
            raise SynthaugError(f"expected labels in 0..{k - 1} ({k} classes: "
                                f"{_short(self.card.class_names)}), got {int(bad[0])}")
        return t

    def sample(self, labels: Sequence[int] | torch.Tensor | np.ndarray, seed: int | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Images of the given classes; noise from ``seed`` or ``generator`` (CPU)."""
        labels = self.check_labels(labels)
        rng = make_generator(seed, generator)
        noise = draw_noise(self.card.noise, labels.numel(), rng, self.truncation)
        chunks = [self._generate(noise[i:i + self.batch_size], labels[i:i + self.batch_size])
                  for i in range(0, labels.numel(), self.batch_size)]
        if not chunks:
            return torch.empty((0, *self.card.image_shape), device=self.device)
        return torch.cat(chunks)

    def sample_on_device(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The hot path for training loops: labels (int64, on the sampler's device) are trusted,
        noise is drawn from ``generator`` on that device, and nothing waits for the host.
        Zero labels give an empty ``[0, C, H, W]`` batch for every family."""
        if labels.shape[0] == 0:  # known from the shape alone; some families cannot run on 0 rows
            return torch.empty((0, *self.card.image_shape), device=self.device)
        noise = draw_noise(self.card.noise, labels.shape[0], generator, self.truncation)
        return self._generate(noise, labels)

    def sample_per_class(self, per_class: int, classes: Sequence[int] | None = None,
                         seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``per_class`` images of each class (all classes by default), grouped by class."""
        if per_class < 1:
            raise SynthaugError(f"expected at least 1 image per class, got {per_class}")
        classes = list(range(self.card.num_classes)) if classes is None else list(classes)
        labels = self.check_labels(torch.as_tensor(classes).repeat_interleave(per_class))
        return self.sample(labels, seed=seed), labels

    def to_pixels(self, images: torch.Tensor) -> np.ndarray:
        """Images as the dataset's own pixels: uint8 ``[N, H, W]`` (grey) or ``[N, H, W, C]``."""
        pixel_max = self.card.pixel_max
        arr = (images.detach().float().cpu().clamp(0, 1) * pixel_max).round().to(torch.uint8)
        arr = arr.permute(0, 2, 3, 1).numpy()
        return arr[..., 0] if arr.shape[-1] == 1 else arr

    @abc.abstractmethod
    def _generate(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """One batch: CPU noise and labels in, images on ``self.device`` out."""


class TorchSampler(Sampler):
    """Samples from a generator module with PyTorch.

    The module is used as it is given (moved to ``device`` when one is given): its
    ``requires_grad`` flags are left alone and sampling runs under ``torch.inference_mode`` in
    eval mode, restoring each submodule's train/eval mode afterwards. So wrapping a generator
    that is still training (e.g. to preview it) does not freeze it or touch its BatchNorm statistics.

    Example:
        >>> from synthaug.models import create_generator
        >>> from synthaug.card import GeneratorCard
        >>> g = create_generator("dcgan", None, (1, 8, 8), 2).eval()
        >>> card = GeneratorCard("dcgan", {}, [1, 8, 8], 2, ["a", "b"], g.noise_spec(),
        ...                      {"range": [0, 1]})
        >>> TorchSampler(g, card).sample([0, 1], seed=0).shape
        torch.Size([2, 1, 8, 8])
    """

    def __init__(self, module: torch.nn.Module, card: GeneratorCard,
                 device: str | torch.device | None = None, batch_size: int = 256) -> None:
        self.card = card
        self.device = torch.device(device) if device is not None else next(module.parameters()).device
        self.module = module.to(self.device)
        self.batch_size = batch_size

    @torch.inference_mode()
    def _generate(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        # Eval mode for sampling (train-mode BatchNorm would use batch statistics and update its
        # running ones), then each submodule gets its own mode back: the caller may be training it.
        training = [m for m in self.module.modules() if m.training]
        if training:
            self.module.eval()
        try:
            return self.module(noise.to(self.device), labels.to(self.device)).float()
        finally:
            for m in training:
                m.training = True


class OnnxSampler(Sampler):
    """Samples from an exported ``model.onnx`` with ONNX Runtime.

    The session is created on first use, and dropped when pickled, so a sampler can be handed
    to DataLoader workers. A model file is untrusted input: every batch it returns is checked
    against the request (float32 ``[N, *card.image_shape]`` for N labels).
    """

    def __init__(self, path: str, card: GeneratorCard | None = None, device: str | torch.device = "cpu",
                 providers: Sequence[str] | None = None, threads: int | None = None,
                 batch_size: int = 256, spin: bool = False) -> None:
        self.path = str(path)
        self.card = card if card is not None else read_onnx_card(self.path)
        self.device = torch.device(device)
        self.providers = list(providers) if providers else _default_providers(self.device)
        self.threads = threads
        self.spin = spin
        self.batch_size = batch_size
        self._session = None

    @property
    def session(self):
        if self._session is None:
            import onnxruntime as ort

            options = ort.SessionOptions()
            if self.threads:
                options.intra_op_num_threads = self.threads
            if not self.spin:
                # Sampling usually alternates with torch work (a training step): ORT's threads
                # spinning after each run would take the cores torch needs.
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            try:
                self._session = ort.InferenceSession(self.path, options, providers=self.providers)
            except Exception as err:  # onnxruntime's Fail/InvalidGraph/... share no public base class
                first = first_line(err)
                raise SynthaugError(f"{self.path}: ONNX Runtime cannot load this model ({first})") from None
        return self._session

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_session"] = None  # InferenceSession cannot be pickled
        return state

    def _generate(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.device.type == "cuda":
            return self._generate_iobinding(noise, labels)
        feeds = {"noise": noise.cpu().numpy(), "labels": labels.cpu().numpy()}
        (images,) = self._run(lambda: self.session.run(["images"], feeds))
        # The graph is untrusted: it must give one image of the card's shape per label, or the
        # caller would pair images with the wrong labels.
        expected = (labels.shape[0], *self.card.image_shape)
        if not isinstance(images, np.ndarray) or images.shape != expected or images.dtype != np.float32:
            got = f"{images.dtype} {list(images.shape)}" if isinstance(images, np.ndarray) else type(images).__name__
            raise SynthaugError(f"{self.path}: expected the model to return float32 images "
                                f"{list(expected)} for {labels.shape[0]} labels, got {got}")
        return torch.from_numpy(images)

    def _run(self, call):
        """ONNX Runtime's errors (wrong shapes inside a foreign graph, ...) as one line."""
        try:
            return call()
        except SynthaugError:
            raise
        except Exception as err:  # onnxruntime's error types share no public base class
            first = first_line(err)
            raise SynthaugError(f"{self.path}: ONNX Runtime failed to run this model ({first})") from None

    def _generate_iobinding(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        # Inputs and output stay in torch's CUDA memory: no host round trip. ONNX Runtime does not
        # wait on torch's stream, so finish torch's pending work first.
        noise = noise.to(self.device, torch.float32).contiguous()
        labels = labels.to(self.device, torch.int64).contiguous()
        out = torch.empty((noise.shape[0], *self.card.image_shape), device=self.device, dtype=torch.float32)
        index = self.device.index or 0
        binding = self.session.io_binding()
        binding.bind_input("noise", "cuda", index, np.float32, tuple(noise.shape), noise.data_ptr())
        binding.bind_input("labels", "cuda", index, np.int64, tuple(labels.shape), labels.data_ptr())
        binding.bind_output("images", "cuda", index, np.float32, tuple(out.shape), out.data_ptr())
        torch.cuda.current_stream(self.device).synchronize()
        # The output is bound to a buffer of the expected shape: a graph returning another shape
        # makes ONNX Runtime fail, which _run reports as one line.
        self._run(lambda: self.session.run_with_iobinding(binding))
        return out


def _default_providers(device: torch.device) -> list[str]:
    if device.type == "cuda":
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def _short(names: Sequence[str], n: int = 6) -> str:
    return ", ".join(names[:n]) + (", ..." if len(names) > n else "")
