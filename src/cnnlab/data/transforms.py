"""Batched transforms, applied on the training device to whole uint8 batches (B, C, H, W)."""

from __future__ import annotations

from collections.abc import Sequence

import torch


class Normalize:
    """uint8 (B, C, H, W) → float (B, C, H, W): ÷255, then (x − mean) / std per channel (0–1 scale stats)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = [float(m) for m in mean]
        self.std = [float(s) for s in std]
        # fold ÷255 and standardization into one multiply-add: x * scale + shift
        self._scale = torch.tensor([1.0 / (255.0 * s) for s in self.std]).view(1, -1, 1, 1)
        self._shift = torch.tensor([-m / s for m, s in zip(self.mean, self.std, strict=True)]).view(1, -1, 1, 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self._scale.shape[1]:
            raise ValueError(f"Normalize for {self._scale.shape[1]} channel(s) got a batch of {x.shape[1]}")
        if self._scale.device != x.device:
            self._scale, self._shift = self._scale.to(x.device), self._shift.to(x.device)
        return torch.addcmul(self._shift, x.float(), self._scale)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"


class Compose:
    """Apply batch transforms in order."""

    def __init__(self, transforms: Sequence) -> None:
        self.transforms = list(transforms)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for t in self.transforms:
            x = t(x)
        return x
