"""Feature extraction: the penultimate-layer CNN codes of every split, and a linear probe on them.

The codes are those of `infer.cnn_codes` (fp32, BatchNorm as trained). The linear probe is scikit-learn's
multinomial logistic regression on standardized codes, fitted on the training codes and scored on the others:
how linearly separable a trained network's features make a (possibly new) task.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import nn

from cnnlab.data import DataSplits, ImageSet
from cnnlab.files import atomic_write
from cnnlab.infer import cnn_codes
from cnnlab.io import RunMeta

SPLITS = ("train", "val", "test")


def split_codes(model: nn.Module, meta: RunMeta, data: ImageSet, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """(codes (N, D) float32, labels (N,) int64) of one split, normalized with the model's training mean / std."""
    if tuple(data.image_shape) != tuple(meta.input_size) and data.image_shape[0] != meta.input_size[0]:
        raise ValueError(
            f"the model takes {meta.input_size[0]}-channel images, the data has {data.image_shape[0]} channels"
        )
    codes = cnn_codes(model, data.images, meta.mean, meta.std, device=device)
    return codes.numpy(), data.labels.numpy()


def extract(model: nn.Module, meta: RunMeta, splits: DataSplits, device: str = "cpu") -> dict[str, np.ndarray]:
    """The codes and labels of every split present: {train_codes, train_labels, val_…, test_…, classes}."""
    out: dict[str, np.ndarray] = {"classes": np.array(splits.classes)}
    for name in SPLITS:
        data = getattr(splits, name)
        if data is not None:
            out[f"{name}_codes"], out[f"{name}_labels"] = split_codes(model, meta, data, device)
    return out


def save_codes(path: str | Path, codes: dict[str, np.ndarray]) -> Path:
    """Write the codes as a compressed .npz (keys as `extract` returns them), atomically, under exactly `path`."""
    path = Path(path)
    if path.suffix.lower() != ".npz":
        raise ValueError(f"{path}: the codes are written as an .npz file; give a name ending in .npz")

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: numpy adds no .npz of its own to the temporary name
            np.savez_compressed(f, **codes)

    return atomic_write(path, write)


def linear_probe(codes: dict[str, np.ndarray], c: float = 1.0, max_iter: int = 2000, seed: int = 0) -> dict:
    """Logistic regression (L2, inverse strength `c`) on the standardized training codes; accuracy per split."""
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
    except ImportError:
        raise ImportError("the linear probe needs scikit-learn: pip install 'cnnlab[explain]'") from None
    if "train_codes" not in codes:
        raise ValueError("the linear probe needs training codes")
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=max_iter, random_state=seed))
    probe.fit(codes["train_codes"], codes["train_labels"])
    out = {"dim": int(codes["train_codes"].shape[1]), "c": c}
    for name in SPLITS:
        if f"{name}_codes" in codes:
            acc = float((probe.predict(codes[f"{name}_codes"]) == codes[f"{name}_labels"]).mean())
            out[f"{name}_accuracy"] = acc
            out[f"{name}_n"] = int(len(codes[f"{name}_labels"]))
    return out
