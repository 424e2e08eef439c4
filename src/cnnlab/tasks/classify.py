"""Classification: class labels in, class logits out — cnnlab's first task, exactly as it always trained.

The loss is cross-entropy (label smoothing, auxiliary heads, soft targets from mixup / cutmix), the running metric
accuracy, the evaluation accuracy, loss, per-class precision / recall / F1 and the confusion matrix, and a
prediction the top classes with their probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from cnnlab.models import main_output
from cnnlab.tasks.base import Task
from cnnlab.tasks.drawing import caption, enlarge


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


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    """counts[i, j] = samples of true class i predicted as j."""
    return np.bincount(labels * num_classes + preds, minlength=num_classes**2).reshape(num_classes, num_classes)


def most_confused(confusion: np.ndarray, classes: list[str], top: int = 10, min_count: int = 1) -> list[dict]:
    """The off-diagonal cells of the confusion matrix with the most samples, as fastai's `most_confused`:
    [{"true", "predicted", "count"}] sorted by count (ties in row-major order), at most `top` of them."""
    conf = np.asarray(confusion)
    pairs = [
        (int(conf[i, j]), i, j)
        for i in range(len(conf))
        for j in range(len(conf))
        if i != j and conf[i, j] >= min_count
    ]
    pairs.sort(key=lambda t: -t[0])  # stable: ties keep row-major order
    return [{"true": classes[i], "predicted": classes[j], "count": n} for n, i, j in pairs[:top]]


def metrics_from_logits(logits: torch.Tensor, labels: torch.Tensor, classes: list[str]) -> dict:
    """Accuracy, mean cross-entropy, per-class precision/recall/F1/support, their macro averages (the unweighted
    mean over classes, as scikit-learn's classification_report), the most-confused pairs and the confusion matrix."""
    loss = torch.nn.functional.cross_entropy(logits, labels).item()
    preds = logits.argmax(1).numpy()
    y = labels.numpy()
    conf = confusion_matrix(y, preds, len(classes))
    tp = np.diag(conf).astype(float)
    precision = tp / np.maximum(conf.sum(0), 1)
    recall = tp / np.maximum(conf.sum(1), 1)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    per_class = [
        {"class": c, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for c, p, r, f, s in zip(classes, precision, recall, f1, conf.sum(1), strict=True)
    ]
    macro = {
        "precision": float(precision.mean()),
        "recall": float(recall.mean()),
        "f1": float(f1.mean()),
        "support": int(conf.sum()),
    }
    return {
        "accuracy": float((preds == y).mean()),
        "loss": loss,
        "n": int(len(y)),
        "per_class": per_class,
        "macro_avg": macro,
        "most_confused": most_confused(conf, list(classes)),
        "confusion": conf.tolist(),
    }


def format_report(result: dict, classes: list[str]) -> str:
    """Accuracy, per-class table with its macro average, the most-confused pairs and the confusion matrix as plain
    text."""
    width = max(len(c) for c in [*classes, "macro avg"]) + 2
    lines = [f"accuracy: {result['accuracy']:.4f} ({result['n']} samples)   loss: {result['loss']:.4f}", ""]
    lines.append(f"{'class':<{width}}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}")
    for row in result["per_class"]:
        lines.append(
            f"{row['class']:<{width}}{row['precision']:>10.4f}{row['recall']:>10.4f}"
            f"{row['f1']:>10.4f}{row['support']:>10d}"
        )
    macro = result.get("macro_avg")
    if macro:
        lines.append(
            f"{'macro avg':<{width}}{macro['precision']:>10.4f}{macro['recall']:>10.4f}"
            f"{macro['f1']:>10.4f}{macro['support']:>10d}"
        )
    pairs = result.get("most_confused")
    if pairs:
        lines += ["", f"most confused (true → predicted: count), top {len(pairs)}"]
        pw = max(len(p["true"]) for p in pairs)
        lines += [f"  {p['true']:<{pw}} → {p['predicted']}: {p['count']}" for p in pairs]
    lines += ["", "confusion matrix (rows: true, columns: predicted)"]
    conf = np.asarray(result["confusion"])
    cell = max(5, len(str(conf.max())) + 1)
    lines.append(" " * width + "".join(f"{i:>{cell}}" for i in range(len(classes))))
    for i, c in enumerate(classes):
        lines.append(f"{i:>2} {c:<{width - 3}}" + "".join(f"{v:>{cell}}" for v in conf[i]))
    return "\n".join(lines)


def top_classes(probs: torch.Tensor, classes: Sequence[str], k: int) -> list[list[dict]]:
    """For each row of probabilities (N, K): the `k` most probable classes, [{"class", "index", "probability"}]."""
    values, indices = probs.topk(min(k, probs.shape[1]), dim=1)
    return [
        [{"class": classes[i], "index": int(i), "probability": float(p)} for p, i in zip(row_p, row_i, strict=True)]
        for row_p, row_i in zip(values.tolist(), indices.tolist(), strict=True)
    ]


class Classify(Task):
    """Image classification: one class per image."""

    name = "classify"
    target = "label"
    running_metrics = ("accuracy",)
    main_metric = "accuracy"
    onnx_output = "logits"

    @property
    def output_shape(self) -> tuple[int, ...]:
        return (self.num_classes,)

    def describe_outputs(self) -> str:
        return f"logits (N, {self.num_classes}): one score per class; softmax gives the probabilities"

    def build(self, backbone: nn.Module) -> nn.Module:
        if getattr(backbone, "default_cfg", {}).get("per_pixel"):  # a notation string ending with a CL
            name = getattr(backbone, "model_name", type(backbone).__name__)
            raise ValueError(f"{name} gives a class per pixel, not one per image: train it with --task segment")
        return backbone  # a classifier is the backbone with its own head

    def loss(self, label_smoothing: float = 0.0) -> ClassificationLoss:
        return ClassificationLoss(label_smoothing)

    def running(self, output, target: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"accuracy": (main_output(output).argmax(1) == hard_labels(target)).sum()}

    def evaluate_sums(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        if not len(targets):
            return {"loss": 0.0, "accuracy": 0}
        loss = F.cross_entropy(outputs, targets, reduction="sum").item()
        return {"loss": loss, "accuracy": (outputs.argmax(1) == targets).sum().item()}

    def evaluate_outputs(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        # the means as cnnlab has always computed them (the resume and reproduction tests compare them exactly)
        loss = F.cross_entropy(outputs, targets).item()
        return {"loss": loss, "accuracy": (outputs.argmax(1) == targets).float().mean().item()}

    def metrics(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict:
        return metrics_from_logits(outputs, targets, self.classes)

    def report(self, result: dict) -> str:
        return format_report(result, self.classes)

    def score(self, outputs: torch.Tensor, targets: torch.Tensor) -> float:
        return float((outputs.argmax(1) == targets).double().mean())

    def decode(self, outputs: torch.Tensor, top: int = 3) -> list[dict]:
        return [{"top": t} for t in top_classes(outputs.float().softmax(1), self.classes, top)]

    def describe(self, prediction: dict) -> str:
        return ", ".join(f"{t['class']} {t['probability']:.1%}" for t in prediction["top"])

    def draw(self, image: torch.Tensor, prediction: dict) -> Image.Image:
        best = prediction["top"][0]
        return caption(enlarge(image)[0], f"{best['class']} {best['probability']:.0%}")
