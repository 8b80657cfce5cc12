"""Deploy-side code: samplers and loading. Never imports training code."""

from .load import load
from .onnx_card import read_onnx_card
from .sampler import OnnxSampler, Sampler, TorchSampler, draw_noise, make_generator

__all__ = ["load", "read_onnx_card", "Sampler", "TorchSampler", "OnnxSampler", "draw_noise", "make_generator"]
