"""Predict classes of images with a trained classifier (torch or ONNX), reading files exactly as its training data
were read."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from cnnlab.data.images import load_model_input
from cnnlab.infer import Classifier


def top_classes(probs: torch.Tensor, classes: Sequence[str], k: int) -> list[list[dict]]:
    """For each row of probabilities (N, K): the `k` most probable classes, [{"class", "index", "probability"}]."""
    values, indices = probs.topk(min(k, probs.shape[1]), dim=1)
    return [
        [{"class": classes[i], "index": int(i), "probability": float(p)} for p, i in zip(row_p, row_i, strict=True)]
        for row_p, row_i in zip(values.tolist(), indices.tolist(), strict=True)
    ]


def predict_images(classifier: Classifier, images: torch.Tensor, top: int = 3) -> list[list[dict]]:
    """The `top` classes of each uint8 image (N, C, H, W), most probable first."""
    return top_classes(classifier.logits(images).float().softmax(1), classifier.meta.classes, top)


def predict_files(classifier: Classifier, files: Sequence[str | Path], top: int = 3) -> list[dict]:
    """For each file: the `top` classes with probabilities, and notes on any conversion made."""
    images, notes = [], []
    for f in files:
        x, n = load_model_input(f, classifier.meta.input_size)
        images.append(x)
        notes.append(n)
    tops = predict_images(classifier, torch.stack(images), top)
    return [{"file": str(f), "top": t, "notes": n} for f, t, n in zip(files, tops, notes, strict=True)]
