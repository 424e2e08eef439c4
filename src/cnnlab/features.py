"""Feature extraction: the penultimate-layer CNN codes of every split, and a linear probe on them.

The codes are those of `infer.cnn_codes` (fp32, BatchNorm as trained). The linear probe is scikit-learn's
multinomial logistic regression on standardized codes, fitted on the training codes and scored on the others:
how linearly separable a trained network's features make a (possibly new) task.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from torch import nn

from cnnlab.data import DataSplits, ImageSet
from cnnlab.files import atomic_write
from cnnlab.infer import cnn_codes
from cnnlab.io import RunMeta

SPLITS = ("train", "val", "test")


def split_codes(
    model: nn.Module, meta: RunMeta, data: ImageSet, device: str = "cpu", log: Callable[[str], None] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(codes (N, D) float32, labels (N,) int64) of one split, normalized with the model's training mean / std.
    log: gets a progress line every 10 s of a long pass."""
    if tuple(data.image_shape) != tuple(meta.input_size) and data.image_shape[0] != meta.input_size[0]:
        raise ValueError(
            f"the model takes {meta.input_size[0]}-channel images, the data has {data.image_shape[0]} channels"
        )
    codes = cnn_codes(model, data.images, meta.mean, meta.std, device=device, log=log)
    return codes.numpy(), data.labels.numpy()


def extract(
    model: nn.Module, meta: RunMeta, splits: DataSplits, device: str = "cpu", log: Callable[[str], None] | None = None
) -> dict[str, np.ndarray]:
    """The codes and labels of every split present: {train_codes, train_labels, val_…, test_…, classes}.
    log: gets a line as each split starts, and progress lines during a long one."""
    out: dict[str, np.ndarray] = {"classes": np.array(splits.classes)}
    present = [(name, getattr(splits, name)) for name in SPLITS if getattr(splits, name) is not None]
    for i, (name, data) in enumerate(present, 1):
        if log is not None:
            log(f"features: {name} split ({i}/{len(present)}), CNN codes of {len(data):,} images …")
        out[f"{name}_codes"], out[f"{name}_labels"] = split_codes(model, meta, data, device, log)
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


def linear_probe(
    codes: dict[str, np.ndarray],
    c: float = 1.0,
    max_iter: int = 2000,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Logistic regression (L2, inverse strength `c`) on the standardized training codes; accuracy per split.
    log: gets a line before the fit and before the scoring."""
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
    except ImportError:
        raise ImportError("the linear probe needs scikit-learn: pip install 'cnnlab[explain]'") from None
    if "train_codes" not in codes:
        raise ValueError("the linear probe needs training codes")
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=max_iter, random_state=seed))
    n, dim = codes["train_codes"].shape
    if log is not None:
        log(f"features: fitting the linear probe (logistic regression on {n:,} training codes of {dim} features) …")
    probe.fit(codes["train_codes"], codes["train_labels"])
    if log is not None:
        log("features: scoring the linear probe on every split …")
    out = {"dim": int(codes["train_codes"].shape[1]), "c": c}
    for name in SPLITS:
        if f"{name}_codes" in codes:
            acc = float((probe.predict(codes[f"{name}_codes"]) == codes[f"{name}_labels"]).mean())
            out[f"{name}_accuracy"] = acc
            out[f"{name}_n"] = int(len(codes[f"{name}_labels"]))
    return out
