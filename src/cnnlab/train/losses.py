"""Losses: each task's own (cnnlab/tasks), re-exported here where training code has always found them."""

from cnnlab.tasks.classify import ClassificationLoss, hard_labels

__all__ = ["ClassificationLoss", "hard_labels"]
