"""Predict with a trained model (torch or ONNX) on image files, read exactly as its training data were read: the
model's task decodes the outputs (classification: the top classes; localization: also the box) and draws them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cnnlab.data.images import load_model_input
from cnnlab.infer import Classifier
from cnnlab.io.meta import RunMeta
from cnnlab.tasks.classify import top_classes

__all__ = ["draw_predictions", "predict_files", "predict_images", "top_classes"]


def predict_images(classifier: Classifier, images: torch.Tensor, top: int = 3) -> list[list[dict]]:
    """The `top` classes of each uint8 image (N, C, H, W), most probable first."""
    return top_classes(classifier.logits(images).float().softmax(1), classifier.meta.classes, top)


def predict_files(
    classifier: Classifier, files: Sequence[str | Path | Image.Image | np.ndarray], top: int = 3
) -> list[dict]:
    """For each file: the task's prediction (`top`: the classes with probabilities, most probable first; a box task
    also its box in pixels of the model's input) and notes on any conversion made.

    files: image files, or images in memory (PIL images, H×W(×C) arrays; their "file" is None)."""
    images, notes = [], []
    for f in files:
        x, n = load_model_input(f, classifier.meta.input_size)
        images.append(x)
        notes.append(n)
    task = classifier.meta.make_task()
    predictions = task.decode(classifier.logits(torch.stack(images)), top)
    names = [str(f) if isinstance(f, str | Path) else None for f in files]
    return [{"file": f, **p, "notes": n} for f, p, n in zip(names, predictions, notes, strict=True)]


def draw_predictions(meta: RunMeta, results: list[dict], out: str | Path) -> list[Path]:
    """Each file of `results` (from `predict_files`) as the model saw it, its prediction drawn, written as
    `out`/<name>.pred.png (and the task's other drawings, e.g. a segmentation's <name>.mask.png); returns the paths
    written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    task, written = meta.make_task(), []
    for r in results:
        image, _ = load_model_input(r["file"], meta.input_size)
        for suffix, drawn in task.drawings(image, r).items():  # <name>.pred.png; a segmentation's <name>.mask.png
            path = out / f"{Path(r['file']).stem}.{suffix}.png"
            drawn.save(path)
            written.append(path)
    return written
