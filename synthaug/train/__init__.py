"""Fitting generators: the loop, checkpoints and resume."""

from .fit import DEFAULT_STEPS, fit, peak_memory_mb

__all__ = ["fit", "DEFAULT_STEPS", "peak_memory_mb"]
