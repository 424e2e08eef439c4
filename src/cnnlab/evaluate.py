"""Metrics on a labelled set: accuracy, loss, per-class precision / recall / F1, confusion matrix.

The logits come from a `cnnlab.infer.Classifier`: the torch model through the one inference path (BN folded, the
run's precision and TTA), or an ONNX Runtime session fed the same way.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from cnnlab.data.dataset import ImageSet
from cnnlab.infer import Classifier
from cnnlab.io.meta import RunMeta


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


def evaluate(classifier: Classifier, data: ImageSet, log: Callable[[str], None] | None = None) -> dict:
    """The report of `metrics_from_logits` for a classifier (torch or ONNX) on a labelled set, fed as its metadata
    says (normalization, and flip TTA unless the classifier was told otherwise).

    log: gets a progress line every 10 s of a long evaluation.
    """
    check_compatible(classifier.meta, data.image_shape, len(data.classes))
    return metrics_from_logits(classifier.logits(data.images, log=log), data.labels, list(classifier.meta.classes))


def check_compatible(meta: RunMeta, image_shape: tuple[int, int, int], num_classes: int) -> None:
    """Refuse data whose image shape or class count differs from what the model was trained on."""
    if tuple(image_shape) != meta.input_size:
        c, h, w = meta.input_size
        raise ValueError(
            f"the model was trained on {c}×{h}×{w} images (C×H×W) but the data are "
            f"{'×'.join(map(str, image_shape))}; give images of its size (run_splits reads a data set at the "
            "model's input size)"
        )
    if num_classes != meta.num_classes:
        raise ValueError(f"the model has {meta.num_classes} classes but the data have {num_classes}")


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
