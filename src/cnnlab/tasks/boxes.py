"""Box arithmetic in torch: conversions, IoU, generalized IoU (Rezatofighi et al., 2019) and distance IoU (Zheng
et al., 2020). Boxes are (..., 4) tensors; two arguments broadcast, so `box_iou(a, b)` pairs box i with box i and
`box_iou(a[:, None], b[None])` gives the N×M matrix of every pair (what detection matches with).

Corners are (x1, y1, x2, y2) with x2 ≥ x1 and y2 ≥ y1, in any unit shared by both arguments (pixels, or fractions
of the image).
"""

from __future__ import annotations

import torch

EPS = 1e-7  # keeps a ratio finite when both boxes have no area


def cxcywh_to_xyxy(b: torch.Tensor) -> torch.Tensor:
    """(cx, cy, w, h) → (x1, y1, x2, y2)."""
    cx, cy, w, h = b.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)


def xyxy_to_cxcywh(b: torch.Tensor) -> torch.Tensor:
    """(x1, y1, x2, y2) → (cx, cy, w, h)."""
    x1, y1, x2, y2 = b.unbind(-1)
    return torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], -1)


def box_area(b: torch.Tensor) -> torch.Tensor:
    return (b[..., 2] - b[..., 0]).clamp_min(0) * (b[..., 3] - b[..., 1]).clamp_min(0)


def _overlap(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(intersection, union) areas of broadcast box pairs."""
    lt = torch.maximum(a[..., :2], b[..., :2])
    rb = torch.minimum(a[..., 2:], b[..., 2:])
    inter = (rb - lt).clamp_min(0).prod(-1)
    return inter, box_area(a) + box_area(b) - inter


def _enclosing(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-left and bottom-right corners of the smallest box that holds both."""
    return torch.minimum(a[..., :2], b[..., :2]), torch.maximum(a[..., 2:], b[..., 2:])


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Intersection over union, in [0, 1]."""
    inter, union = _overlap(a, b)
    return inter / (union + EPS)


def generalized_box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """GIoU = IoU − (C − U) / C, C the area of the smallest enclosing box: in (−1, 1], and < 0 for boxes that do not
    touch, so 1 − GIoU still has a gradient that pulls them together where IoU's is zero."""
    inter, union = _overlap(a, b)
    lt, rb = _enclosing(a, b)
    hull = (rb - lt).clamp_min(0).prod(-1)
    return inter / (union + EPS) - (hull - union) / (hull + EPS)


def distance_box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """DIoU = IoU − ρ² / c², ρ the distance between the centres, c the diagonal of the enclosing box."""
    inter, union = _overlap(a, b)
    lt, rb = _enclosing(a, b)
    diagonal = ((rb - lt) ** 2).sum(-1)
    centres = (((a[..., :2] + a[..., 2:]) - (b[..., :2] + b[..., 2:])) ** 2).sum(-1) / 4
    return inter / (union + EPS) - centres / (diagonal + EPS)
