"""Predict classes of image files with a saved model, reading them exactly as its training data were read."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from cnnlab.data.images import load_model_input
from cnnlab.infer import predict_logits


def predict_files(
    model: nn.Module, meta: dict, files: list[str | Path], top: int = 3, device: str = "auto"
) -> list[dict]:
    """For each file: the `top` classes with probabilities, and notes on any conversion made."""
    images, notes = [], []
    for f in files:
        x, n = load_model_input(f, meta["input_size"])
        images.append(x)
        notes.append(n)
    logits = predict_logits(
        model, torch.stack(images), meta["mean"], meta["std"], device, meta["precision"], tta=meta.get("tta", False)
    )
    probs = logits.softmax(1)
    k = min(top, probs.shape[1])
    values, indices = probs.topk(k, dim=1)
    return [
        {
            "file": str(f),
            "top": [
                {"class": meta["classes"][i], "index": int(i), "probability": float(p)}
                for p, i in zip(vals.tolist(), idx.tolist(), strict=True)
            ],
            "notes": n,
        }
        for f, vals, idx, n in zip(files, values, indices, notes, strict=True)
    ]
