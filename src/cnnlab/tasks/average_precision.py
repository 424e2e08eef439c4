"""COCO-style average precision of detections, and class-aware non-maximum suppression.

`average_precision` follows the COCO evaluation (pycocotools' `COCOeval` for boxes, area range "all", at most
`max_detections` per image and class) step by step, so that its numbers are pycocotools' (the tests compare them
to 1e-4):

1. per image and class, detections sorted by score (a stable sort: ties keep their order) and cut to
   `max_detections`; each, in that order, takes the unmatched truth it overlaps most with IoU ≥ t (on equal IoU
   the later truth), for each IoU threshold t in 0.50, 0.55, …, 0.95;
2. per class, the detections of all images (in image order) sorted by score again; cumulative true / false
   positives give precision and recall; precision is made non-increasing from the right (the envelope) and read
   at 101 recall points 0, 0.01, …, 1 (the first detection reaching each recall; 0 past the last);
3. AP of a class at t = the mean of those 101 precisions; a class without truths has no AP (None) and is left out
   of the means. mAP@0.5 is the mean over classes at t = 0.5, mAP@0.5:0.95 the mean over classes and thresholds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from cnnlab.tasks.boxes import box_iou

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)  # COCO's 0.50:0.05:0.95
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression within each group (e.g. class, or image × class): indices of the boxes kept,
    highest score first. A box is dropped when a kept box of its group with a higher score (ties: the earlier
    index) overlaps it with IoU > `iou_threshold`.

    boxes: (n, 4) x1, y1, x2, y2; scores, groups: (n,). Memory is n², so call it per image.
    """
    if not len(boxes):
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = scores.argsort(descending=True, stable=True)
    b, g = boxes[order].float(), groups[order]
    overlaps = (box_iou(b[:, None], b[None]) > iou_threshold) & (g[:, None] == g[None])  # (n, n)
    alive = torch.ones(len(b), dtype=torch.bool, device=b.device)
    keep = []
    while True:
        left = alive.nonzero()
        if not len(left):
            break
        i = int(left[0])  # the best box still alive is kept and removes what it overlaps in its group
        keep.append(i)
        alive &= ~overlaps[i]
        alive[i] = False
    return order[torch.tensor(keep, dtype=torch.long, device=boxes.device)]


def _iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, m) IoU of float64 corner boxes (n, 4) and (m, 4)."""
    return box_iou(torch.from_numpy(a)[:, None], torch.from_numpy(b)[None]).numpy()


def _match(ious: np.ndarray) -> np.ndarray:
    """(T, n) bool: detection d (in score order) is a true positive at threshold T[t]. ious: (n, m)."""
    n, m = ious.shape
    hits = np.zeros((len(IOU_THRESHOLDS), n), bool)
    for t, threshold in enumerate(IOU_THRESHOLDS):
        taken = np.zeros(m, bool)
        for d in range(n):
            best, best_iou = -1, min(threshold, 1 - 1e-10)
            for g in range(m):  # pycocotools' order: a later truth with an equal IoU replaces an earlier one
                if not taken[g] and ious[d, g] >= best_iou:
                    best, best_iou = g, ious[d, g]
            if best >= 0:
                taken[best], hits[t, d] = True, True
    return hits


def _precision_at_recalls(hits: np.ndarray, scores: np.ndarray, n_truths: int) -> np.ndarray:
    """(T, 101) precision read at RECALL_POINTS from the detections of one class over all images."""
    order = np.argsort(-scores, kind="mergesort")
    tp = np.cumsum(hits[:, order], 1, dtype=float)
    fp = np.cumsum(~hits[:, order], 1, dtype=float)
    out = np.zeros((len(IOU_THRESHOLDS), len(RECALL_POINTS)))
    for t in range(len(IOU_THRESHOLDS)):
        recall = tp[t] / n_truths
        precision = tp[t] / (tp[t] + fp[t] + np.spacing(1))
        precision = np.maximum.accumulate(precision[::-1])[::-1]  # the envelope: non-increasing
        idx = np.searchsorted(recall, RECALL_POINTS, side="left")
        ok = idx < len(precision)
        out[t, ok] = precision[idx[ok]]
    return out


def average_precision(
    detections: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    truths: Sequence[tuple[torch.Tensor, torch.Tensor]],
    num_classes: int,
    max_detections: int = 100,
) -> dict:
    """COCO-style AP (see the module's docstring).

    detections: per image (boxes (n, 4), scores (n,), classes (n,)); truths: per image (boxes (m, 4), classes (m,)),
    boxes as x1, y1, x2, y2 in pixels. Returns `map` (0.5:0.95), `map50`, `map75`, `ap` and `ap50` per class
    (None for a class without truths), `truths` per class, and `precision` (K, 101) at IoU 0.5 (the PR curve;
    None rows for classes without truths).
    """
    hits: list[list[np.ndarray]] = [[] for _ in range(num_classes)]
    scores: list[list[np.ndarray]] = [[] for _ in range(num_classes)]
    n_truths = np.zeros(num_classes, int)
    for (boxes, score, cls), (true_boxes, true_cls) in zip(detections, truths, strict=True):
        boxes, score, cls = boxes.double().numpy(), score.double().numpy(), cls.long().numpy()
        true_boxes, true_cls = true_boxes.double().numpy(), true_cls.long().numpy()
        for c in np.union1d(np.unique(cls), np.unique(true_cls)):
            mine = np.flatnonzero(cls == c)
            mine = mine[np.argsort(-score[mine], kind="mergesort")][:max_detections]
            gt = true_boxes[true_cls == c]
            n_truths[c] += len(gt)
            hits[c].append(_match(_iou_matrix(boxes[mine], gt)))
            scores[c].append(score[mine])
    curves: list[np.ndarray | None] = [None] * num_classes
    for c in range(num_classes):
        if n_truths[c]:
            h = np.concatenate(hits[c], 1) if hits[c] else np.zeros((len(IOU_THRESHOLDS), 0), bool)
            s = np.concatenate(scores[c]) if scores[c] else np.zeros(0)
            curves[c] = _precision_at_recalls(h, s, int(n_truths[c]))
    return _summarize(curves, n_truths)


def _summarize(curves: list[np.ndarray | None], n_truths: np.ndarray) -> dict:
    """The means of the per-class (T, 101) precision curves."""
    ap = [None if p is None else p.mean(1) for p in curves]  # (T,) per class
    present = [a for a in ap if a is not None]

    def mean(t: int | None) -> float:
        if not present:
            return 0.0
        return float(np.mean([a.mean() if t is None else a[t] for a in present]))

    return {
        "map": mean(None),
        "map50": mean(0),
        "map75": mean(5),
        "ap": [None if a is None else float(a.mean()) for a in ap],
        "ap50": [None if a is None else float(a[0]) for a in ap],
        "truths": [int(n) for n in n_truths],
        "precision": [None if p is None else p[0].tolist() for p in curves],
    }
