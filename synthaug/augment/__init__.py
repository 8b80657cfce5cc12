"""Mixing synthetic samples into training: per dataset, per batch, or per albumentations call.

``synthaug.augment.albumentations`` (the albumentations transform) is imported on its own, so
albumentations stays optional.
"""

from ..data.allocation import synthetic_counts
from .dataset import SyntheticDataset
from .mix import SyntheticMix
from .schedule import cosine_schedule, linear_schedule
from .weighting import synthetic_weight

__all__ = ["SyntheticDataset", "SyntheticMix", "synthetic_counts", "linear_schedule", "cosine_schedule",
           "synthetic_weight"]
