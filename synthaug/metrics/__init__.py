"""Measuring generators: classifier-based scores."""

from .cas import classification_accuracy_score
from .classifier import (CLASSIFIERS, SmallCNN, SmallResNet, accuracy, balanced_accuracy, fit_classifier,
                         fit_steps, per_class_accuracy, predict, train_classifier)

__all__ = ["classification_accuracy_score", "SmallCNN", "SmallResNet", "CLASSIFIERS", "accuracy", "balanced_accuracy",
           "per_class_accuracy", "predict", "fit_classifier", "fit_steps", "train_classifier"]
