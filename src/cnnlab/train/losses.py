"""Losses: cross-entropy (optionally label-smoothed) on class indices or soft targets, aware of auxiliary outputs."""

from __future__ import annotations

import torch
import torch.nn.functional as F


class ClassificationLoss:
    """Cross-entropy on logits; a tuple output (main, aux1, aux2, …) adds aux_weight × each auxiliary loss.

    target: class indices (B,) or class probabilities (B, classes), e.g. the mixed targets of mixup / cutmix;
    label smoothing applies to both, as in torch.nn.functional.cross_entropy.
    """

    def __init__(self, label_smoothing: float = 0.0, aux_weight: float = 0.3) -> None:
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = label_smoothing
        self.aux_weight = aux_weight

    def __call__(self, output: torch.Tensor | tuple, target: torch.Tensor) -> torch.Tensor:
        if isinstance(output, tuple):
            main, *aux = output
            loss = self(main, target)
            return loss + self.aux_weight * sum(self(a, target) for a in aux)
        return F.cross_entropy(output.float(), target, label_smoothing=self.label_smoothing)


def hard_labels(target: torch.Tensor) -> torch.Tensor:
    """Class indices (B,) of a target: itself, or the most likely class of soft targets (B, classes)."""
    return target if target.ndim == 1 else target.argmax(1)
