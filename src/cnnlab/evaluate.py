"""Metrics on a labelled set, as the model's task defines them: for classification accuracy, loss, per-class
precision / recall / F1, confusion matrix (`cnnlab.tasks.classify`); for localization also the mean IoU.

The outputs come from a `cnnlab.infer.Classifier`: the torch model through the one inference path (BN folded, the
run's precision and TTA), or an ONNX Runtime session fed the same way.
"""

from __future__ import annotations

from collections.abc import Callable

from cnnlab.data.dataset import ImageSet
from cnnlab.infer import Classifier
from cnnlab.io.meta import RunMeta
from cnnlab.tasks.classify import confusion_matrix, format_report, metrics_from_logits, most_confused

__all__ = ["check_compatible", "confusion_matrix", "evaluate", "format_report", "metrics_from_logits", "most_confused"]


def evaluate(classifier: Classifier, data: ImageSet, log: Callable[[str], None] | None = None) -> dict:
    """The report of the model's task (`Task.metrics`; classification: `metrics_from_logits`) for a classifier
    (torch or ONNX) on a labelled set, fed as its metadata says (normalization, and flip TTA unless the classifier
    was told otherwise).

    log: gets a progress line every 10 s of a long evaluation.
    """
    check_compatible(classifier.meta, data.image_shape, len(data.classes))
    task = classifier.meta.make_task()
    if data.kind != task.target:
        raise ValueError(f"a {task.name} model needs {task.target} targets; these data have {data.kind} targets")
    return task.metrics(classifier.logits(data.images, log=log), data.labels)


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
