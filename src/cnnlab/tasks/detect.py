"""Detection: any number of objects per image → a class, a score and a box for each.

A single-stage, anchor-free grid head (CenterNet / FCOS-like, one scale). The backbone's feature maps are resized
(bilinear) to a fixed `grid`×`grid` map — so the output's shape depends on the task only, on any backbone, and
the cells' size (the stride) is the image size / grid — then a 3×3 conv tower and two 1×1 convs give, per cell:

- K class logits (sigmoid, one per class: a cell's class probability is its score; there is no separate
  objectness — with one positive cell per object, the class heatmap is the objectness, as in CenterNet);
- four distances from the cell's centre to the box's left, top, right and bottom sides, softplus(raw) × stride
  (positive by construction), decoded inside the model into x1, y1, x2, y2 in pixels of the input.

The raw output is ONE tensor (N, grid², K + 4): per cell (row-major) K class logits then the box in pixels, so
inference, flip TTA, ONNX export (the box decoding is in the graph) and bench run it as they run a classifier.
Non-maximum suppression is outside the model (`decode`: scores ≥ a threshold, class-aware `batched_nms`), as in
most exported detectors: an ONNX consumer applies a sigmoid to the logits and its own NMS.

Target assignment: each object belongs to the cell that holds its box's centre; when two objects' centres fall in
one cell, the smaller object wins it (FCOS's rule; the other has no cell this image). Loss: sigmoid focal loss
(Lin et al., 2017; α 0.25, γ 2) over every cell and class, + `giou_weight` × (1 − GIoU) of each positive cell's
box, both summed and divided by the number of positive cells in the batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from cnnlab.tasks.average_precision import average_precision, batched_nms
from cnnlab.tasks.base import Task, TaskModel, feature_shape
from cnnlab.tasks.boxes import generalized_box_iou
from cnnlab.tasks.drawing import COLOURS, caption, draw_box, enlarge

FOCAL_ALPHA, FOCAL_GAMMA = 0.25, 2.0  # RetinaNet's
PRIOR = 0.01  # the class logits start at sigmoid⁻¹(0.01): few cells hold objects (RetinaNet's initialisation)
EVAL_SCORE = 0.05  # detections kept for mAP (COCO practice: a low threshold, the PR curve needs the tail)
PRE_NMS = 1000  # candidates per image before NMS
MAX_DETECTIONS = 100  # per image after NMS (COCO's maxDets)


class GridHead(nn.Module):
    """(B, C, h, w) features → (B, grid², K + 4): per cell K class logits, then x1, y1, x2, y2 in pixels."""

    def __init__(self, in_chans: int, num_classes: int, grid: int, hidden: int, size: tuple[int, int]) -> None:
        super().__init__()
        self.grid_size = grid
        self.tower = nn.Sequential(nn.Conv2d(in_chans, hidden, 3, padding=1), nn.ReLU(inplace=True))
        self.fc = nn.Conv2d(hidden, num_classes, 1)  # class logits (named fc: the model interface's classifier)
        self.box = nn.Conv2d(hidden, 4, 1)  # distances to the four sides, in strides, before softplus
        nn.init.constant_(self.fc.bias, -math.log((1 - PRIOR) / PRIOR))
        h, w = size
        stride = torch.tensor([w / grid, h / grid], dtype=torch.float32)
        rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
        centres = (torch.stack([cols, rows], -1).reshape(-1, 2) + 0.5) * stride  # (grid², 2) x, y in pixels
        self.register_buffer("centres", centres, persistent=False)
        self.register_buffer("stride", stride, persistent=False)
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if tuple(x.shape[-2:]) != (self.grid_size, self.grid_size):
            x = F.interpolate(x, size=(self.grid_size, self.grid_size), mode="bilinear", align_corners=False)
        x = self.tower(x)  # (B, hidden, g, g)
        if pre_logits:
            return x
        logits = self.fc(x).flatten(2).transpose(1, 2)  # (B, g², K)
        sides = F.softplus(self.box(x).flatten(2).transpose(1, 2).float()) * self.stride.repeat(2)  # (B, g², 4)
        boxes = torch.cat([self.centres - sides[..., :2], self.centres + sides[..., 2:]], -1)
        return torch.cat([logits.float(), boxes], -1)

    def reset(self, num_classes: int) -> None:
        self.fc = nn.Conv2d(self.fc.in_channels, num_classes, 1)
        nn.init.constant_(self.fc.bias, -math.log((1 - PRIOR) / PRIOR))
        self.num_classes = num_classes


def with_a_row(targets: torch.Tensor) -> torch.Tensor:
    """`targets` (B, M, 5) with at least one row per image (a set without any object has M = 0; gathering needs a
    row, and a padding row owns no cell)."""
    if targets.shape[1]:
        return targets
    return torch.cat([targets, torch.full((len(targets), 1, 5), -1.0, device=targets.device)], 1)


def assign(targets: torch.Tensor, grid: int, size: tuple[int, int]) -> torch.Tensor:
    """(B, grid²) index of the object (row of `targets` (B, M, 5), padded with class −1) that owns each cell, −1 for
    none: the cell holding the object's centre, the smallest object where centres share a cell."""
    b, m = targets.shape[:2]
    owner = torch.full((b, grid * grid), -1, dtype=torch.long, device=targets.device)
    if not m:
        return owner
    h, w = size
    cx, cy = (targets[..., 1] + targets[..., 3]) / 2, (targets[..., 2] + targets[..., 4]) / 2
    col = (cx * grid / w).long().clamp(0, grid - 1)
    row = (cy * grid / h).long().clamp(0, grid - 1)
    cell = row * grid + col  # (B, M)
    area = (targets[..., 3] - targets[..., 1]) * (targets[..., 4] - targets[..., 2])
    area = torch.where(targets[..., 0] >= 0, area, torch.full_like(area, math.inf))  # padding: never a winner
    order = area.argsort(dim=1, descending=True, stable=True)  # largest first: smaller ones written over them
    batch = torch.arange(b, device=targets.device)
    for r in range(m):  # one object per image each pass, so no two writes hit one cell
        obj = order[:, r]
        real = targets[batch, obj, 0] >= 0
        owner[batch[real], cell[batch, obj][real]] = obj[real]
    return owner


def focal_loss(logits: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Sigmoid focal loss of each logit against its 0/1 truth, −α_t (1 − p_t)^γ log p_t (not reduced)."""
    ce = F.binary_cross_entropy_with_logits(logits, truth, reduction="none")
    p = logits.sigmoid()
    p_t = p * truth + (1 - p) * (1 - truth)
    alpha_t = FOCAL_ALPHA * truth + (1 - FOCAL_ALPHA) * (1 - truth)
    return alpha_t * (1 - p_t) ** FOCAL_GAMMA * ce


class DetectionLoss:
    """Focal loss of the class logits + giou_weight × (1 − GIoU) of the positive cells' boxes, per positive cell."""

    def __init__(self, grid: int, size: tuple[int, int], num_classes: int, giou_weight: float) -> None:
        self.grid, self.size, self.k, self.giou_weight = grid, size, num_classes, giou_weight

    def __call__(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        output, target = output.float(), with_a_row(target)
        owner = assign(target, self.grid, self.size)  # (B, A)
        positive = owner >= 0
        rows = target.gather(1, owner.clamp_min(0)[..., None].expand(-1, -1, 5).to(target.device))  # (B, A, 5)
        truth = F.one_hot(rows[..., 0].long().clamp_min(0), self.k).float() * positive[..., None]
        n = positive.sum().clamp_min(1)
        classes = focal_loss(output[..., : self.k], truth).sum()
        giou = generalized_box_iou(output[..., self.k :][positive], rows[..., 1:].float()[positive])
        return (classes + self.giou_weight * (1 - giou).sum()) / n


class Detect(Task):
    """Detection of every object in each image: class, score and box."""

    name = "detect"
    target = "boxes"
    running_metrics = ("accuracy",)
    main_metric = "map"
    HEADLINE = (("map", "mAP@0.5:0.95"), ("map50", "mAP@0.5"), ("accuracy", "class right at the object's cell"))
    ARGS = {"grid": 8, "hidden": 64, "giou_weight": 2.0, "score": 0.3, "nms_iou": 0.5}

    @property
    def size(self) -> tuple[int, int]:
        return self.input_size[1], self.input_size[2]

    @property
    def grid(self) -> int:
        return int(self.args["grid"])

    @property
    def output_shape(self) -> tuple[int, ...]:
        return (self.grid**2, self.num_classes + 4)

    def describe_outputs(self) -> str:
        k, g = self.num_classes, self.grid
        return (
            f"(N, {g * g}, {k + 4}): per cell of a {g}×{g} grid (row-major), {k} class logits (sigmoid gives each "
            "class's score), then the box's x1, y1, x2, y2 in pixels of the input; no NMS in the graph (scores ≥ a "
            "threshold, then class-aware NMS at IoU 0.5)"
        )

    def build(self, backbone: nn.Module) -> nn.Module:
        shape = feature_shape(backbone, self.input_size)
        if len(shape) != 3:
            raise ValueError(
                f"{backbone.model_name}: detect needs a backbone whose forward_features gives (C, h, w) feature "
                f"maps; it gives {shape}"
            )
        head = GridHead(shape[0], self.num_classes, self.grid, int(self.args["hidden"]), self.size)
        return TaskModel(backbone, head, self.input_size)

    def loss(self, label_smoothing: float = 0.0) -> DetectionLoss:
        return DetectionLoss(self.grid, self.size, self.num_classes, float(self.args["giou_weight"]))

    def _right(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(N,) per image: the share of its objects that own a cell whose most likely class is theirs (an image
        without objects: 1, nothing to get wrong)."""
        targets = with_a_row(targets)
        owner = assign(targets, self.grid, self.size)
        positive = owner >= 0
        truth = targets[..., 0].gather(1, owner.clamp_min(0)).long()
        right = (outputs[..., : self.num_classes].argmax(-1) == truth) & positive
        count = positive.sum(1)
        return torch.where(count > 0, right.sum(1) / count.clamp_min(1), torch.ones_like(count, dtype=torch.float))

    def running(self, output: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"accuracy": self._right(output.detach().float(), target).sum()}

    def evaluate_sums(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        if not len(targets):
            return {"loss": 0.0, "accuracy": 0.0}
        loss = self.loss()(outputs, targets).item() * len(targets)
        return {"loss": loss, "accuracy": self._right(outputs.float(), targets).sum().item()}

    # ---- decoding and metrics
    def detect(self, outputs: torch.Tensor, score: float | None = None) -> list[tuple[torch.Tensor, ...]]:
        """Per image (boxes (n, 4) in pixels, scores (n,), classes (n,)), best first: the (cell, class) pairs
        whose probability is ≥ `score` (default: the task's `score`), class-aware NMS, at most MAX_DETECTIONS."""
        return [d[:3] for d in self.detections(outputs, score)]

    def detections(self, outputs: torch.Tensor, score: float | None = None) -> list[tuple[torch.Tensor, ...]]:
        """`detect`'s (boxes, scores, classes) per image, and the cells (n,) that made them (what explain
        backpropagates from)."""
        threshold = float(self.args["score"]) if score is None else score
        k, (h, w) = self.num_classes, self.size
        out = []
        for image in outputs.float():
            probs = image[:, :k].sigmoid().flatten()  # (A·K,) cell-major
            cand = (probs >= threshold).nonzero().flatten()
            cand = cand[probs[cand].argsort(descending=True, stable=True)[:PRE_NMS]]
            cells, classes, scores = cand // k, cand % k, probs[cand]
            boxes = image[cells, k:].clone()
            boxes[:, 0::2], boxes[:, 1::2] = boxes[:, 0::2].clamp(0, w), boxes[:, 1::2].clamp(0, h)
            keep = batched_nms(boxes, scores, classes, float(self.args["nms_iou"]))[:MAX_DETECTIONS]
            out.append((boxes[keep], scores[keep], classes[keep], cells[keep]))
        return out

    def metrics(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict:
        """COCO-style mAP@0.5:0.95 (`map`), mAP@0.5 (`map50`), mAP@0.75, per-class AP, the PR curves at IoU 0.5,
        the task's loss and the per-cell class accuracy."""
        truths = [(t[t[:, 0] >= 0, 1:], t[t[:, 0] >= 0, 0].long()) for t in targets]
        ap = average_precision(self.detect(outputs, EVAL_SCORE), truths, self.num_classes, MAX_DETECTIONS)
        n = len(targets)
        per_class = [
            {"class": c, "ap": a, "ap50": a50, "objects": t}
            for c, a, a50, t in zip(self.classes, ap["ap"], ap["ap50"], ap["truths"], strict=True)
        ]
        return {
            "map": ap["map"],
            "map50": ap["map50"],
            "map75": ap["map75"],
            "loss": self.loss()(outputs, targets).item() if n else 0.0,
            "accuracy": float(self._right(outputs.float(), targets).mean()) if n else 0.0,
            "n": n,
            "objects": sum(ap["truths"]),
            "per_class": per_class,
            "pr_curves": ap["precision"],
        }

    def summary(self, result: dict) -> dict[str, float]:
        return {k: result[k] for k in ("loss", "accuracy", "map", "map50")}

    def report(self, result: dict) -> str:
        width = max(len(c) for c in [*self.classes, "class"]) + 2
        lines = [
            f"mAP@0.5:0.95: {result['map']:.4f}   mAP@0.5: {result['map50']:.4f}   mAP@0.75: {result['map75']:.4f}   "
            f"({result['n']} images, {result['objects']} objects)",
            f"loss: {result['loss']:.4f}   class right at the object's cell: {result['accuracy']:.4f}",
            "",
            f"{'class':<{width}}{'AP':>10}{'AP@0.5':>10}{'objects':>10}",
        ]
        for row in result["per_class"]:
            ap = "-" if row["ap"] is None else f"{row['ap']:.4f}"
            ap50 = "-" if row["ap50"] is None else f"{row['ap50']:.4f}"
            lines.append(f"{row['class']:<{width}}{ap:>10}{ap50:>10}{row['objects']:>10d}")
        return "\n".join(lines)

    def agreement(self, a: torch.Tensor, b: torch.Tensor) -> float:
        """The share of images for which both engines' outputs detect the same objects: the same classes, as many
        of each, at the task's `score` threshold (boxes are compared by bench's max |Δ| instead)."""
        if not len(a):
            return 1.0
        same = [
            sorted(x[2].tolist()) == sorted(y[2].tolist()) for x, y in zip(self.detect(a), self.detect(b), strict=True)
        ]
        return sum(same) / len(same)

    def flip_back(self, outputs: torch.Tensor) -> torch.Tensor:
        """Cells mirrored left–right, and each box's x1, x2 = W − x2, W − x1."""
        g, w = self.grid, self.size[1]
        out = outputs.reshape(len(outputs), g, g, -1).flip(2).reshape(outputs.shape).clone()
        x1, x2 = out[..., -4].clone(), out[..., -2].clone()
        out[..., -4], out[..., -2] = w - x2, w - x1
        return out

    def decode(self, outputs: torch.Tensor, top: int = 3) -> list[dict]:
        """Per image {"objects": [{class, index, score, box}]}, best first (`top` is not used: every object whose
        score is ≥ the task's `score` is listed)."""
        return [
            {
                "objects": [
                    {"class": self.classes[c], "index": c, "score": round(s, 4), "box": [round(v, 2) for v in b]}
                    for b, s, c in zip(boxes.tolist(), scores.tolist(), classes.tolist(), strict=True)
                ]
            }
            for boxes, scores, classes in self.detect(outputs)
        ]

    def describe(self, prediction: dict) -> str:
        objects = prediction["objects"]
        if not objects:
            return f"no object with a score ≥ {float(self.args['score']):g}"
        return f"{len(objects)} object(s): " + "; ".join(
            f"{o['class']} {o['score']:.0%} at x {o['box'][0]:.0f}-{o['box'][2]:.0f}, y {o['box'][1]:.0f}-"
            f"{o['box'][3]:.0f}"
            for o in objects
        )

    def draw(self, image: torch.Tensor, prediction: dict) -> Image.Image:
        im, factor = enlarge(image)
        for o in prediction["objects"]:
            draw_box(im, o["box"], factor, f"{o['class']} {o['score']:.0%}", COLOURS[o["index"] % len(COLOURS)])
        return caption(im, f"{len(prediction['objects'])} object(s)")
