"""Deploy-side code: samplers and loading. Never imports training code."""

from .filtered import FilteredSampler
from .load import load
from .onnx_card import read_onnx_card
from .sampler import OnnxSampler, Sampler, TorchSampler, draw_noise, make_generator

__all__ = ["FilteredSampler", "load", "read_onnx_card", "Sampler", "TorchSampler", "OnnxSampler", "draw_noise", "make_generator"]
