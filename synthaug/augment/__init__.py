"""Mixing synthetic samples into training: per dataset, per batch, or per albumentations call.

``synthaug.augment.albumentations`` (the albumentations transform) is imported on its own, so
albumentations stays optional.
"""

from .dataset import SyntheticDataset, synthetic_counts
from .mix import SyntheticMix

__all__ = ["SyntheticDataset", "SyntheticMix", "synthetic_counts"]
