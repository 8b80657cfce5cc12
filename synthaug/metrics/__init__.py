"""Measuring generators: classifier-based scores."""

from .cas import classification_accuracy_score
from .classifier import SmallCNN, accuracy, train_classifier

__all__ = ["classification_accuracy_score", "SmallCNN", "accuracy", "train_classifier"]
