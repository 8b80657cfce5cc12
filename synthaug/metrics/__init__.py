"""Measuring generators: classifier-based scores."""

from .cas import classification_accuracy_score
from .classifier import SmallCNN, accuracy, fit_classifier, train_classifier

__all__ = ["classification_accuracy_score", "SmallCNN", "accuracy", "fit_classifier", "train_classifier"]
