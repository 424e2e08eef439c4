"""`npz:PATH` (Keras-style x_train/y_train/x_test/y_test) and `csv:PATH` (label, then pixel columns)."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import torch

from cnnlab.data.dataset import ImageSet
from cnnlab.files import available_memory, check_zip, regular_file


def _to_nchw(x: np.ndarray, path: Path, key: str) -> torch.Tensor:
    """N×H×W, N×H×W×C (C ≤ 4) or N×C×H×W → uint8 N×C×H×W; floats in [0, 1] are scaled to 0–255."""
    if x.size == 0:
        raise ValueError(f"{path}: '{key}' is empty (shape {x.shape})")
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating) or x.dtype == np.bool_):
        raise ValueError(f"{path}: '{key}' holds {x.dtype} values; expected numbers (uint8, or floats in 0–1 / 0–255)")
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
        x = x.transpose(0, 3, 1, 2)  # N×H×W×C, channels last as Keras and numpy images have them
    elif x.ndim != 4:
        raise ValueError(f"{path}: '{key}' has shape {x.shape}; expected N×H×W, N×H×W×C or N×C×H×W")
    if x.dtype != np.uint8:
        if np.issubdtype(x.dtype, np.floating):
            finite = np.isfinite(x)
            if not finite.all():
                where = tuple(int(i) for i in np.argwhere(~finite)[0])
                raise ValueError(f"{path}: '{key}' has non-finite pixels (nan or inf), the first at index {where}")
            if x.max() <= 1.0:
                x = x * 255.0
        x = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    return torch.from_numpy(np.ascontiguousarray(x))


def check_labels(
    labels: np.ndarray, classes: list[str] | None, path: Path, key: str, note_floats: bool = True
) -> np.ndarray:
    """Class indices as int64, checked: whole numbers in 0…K−1 with K the class names given (or, without names,
    K = the largest label + 1, refused when most of those classes would be empty). A bad label is refused at load
    time, before a model is built for it."""
    if labels.size == 0:
        raise ValueError(f"{path}: '{key}' is empty")
    if np.issubdtype(labels.dtype, np.floating):
        if not (np.isfinite(labels).all() and (labels == np.round(labels)).all()):
            raise ValueError(
                f"{path}: '{key}' holds non-integer labels (e.g. {labels.flat[0]!r}); labels are class "
                "indices 0, 1, 2, …"
            )
        if note_floats:
            warnings.warn(
                f"{path}: '{key}' stores labels as {labels.dtype}; read as class indices 0, 1, 2, …", stacklevel=2
            )
    elif not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{path}: '{key}' holds {labels.dtype} values; labels are class indices 0, 1, 2, …")
    labels = labels.astype(np.int64).reshape(-1)
    low, high = int(labels.min()), int(labels.max())
    if classes is not None:
        if low < 0 or high >= len(classes):
            bad = int(labels[(labels < 0) | (labels >= len(classes))][0])
            raise ValueError(
                f"{path}: '{key}' has label {bad}, outside the {len(classes)} classes (0–{len(classes) - 1})"
            )
        return labels
    if low < 0:
        raise ValueError(f"{path}: '{key}' has the negative label {low}; labels are class indices 0, 1, 2, …")
    distinct = len(np.unique(labels))
    if high + 1 > 2 * distinct + 10:  # label 255 among 2 classes would build a 256-class model: say so instead
        raise ValueError(
            f"{path}: '{key}' runs to label {high} but only {distinct} distinct labels appear, so "
            f"{high + 1 - distinct} classes would have no sample; relabel them 0…K−1 or give class "
            "names"
        )
    return labels


def read_npz(path: str | Path) -> tuple[ImageSet, ImageSet | None]:
    """Read x_train, y_train and optionally x_test, y_test and class_names from an .npz file."""
    path = regular_file(path, ".npz file")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04":  # an .npz is a zip archive of .npy arrays
        raise ValueError(f"{path}: not an .npz file (not a zip archive of .npy arrays; save one with numpy.savez)")
    free = available_memory()
    check_zip(path, free // 2, f"half the memory available ({free / 2**30:.1f} GiB)")
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read npz file ({e})") from None
    with z:
        keys = set(z.files)
        if not {"x_train", "y_train"} <= keys:
            raise ValueError(f"{path}: needs arrays 'x_train' and 'y_train' (found {sorted(keys)})")
        names = [str(c) for c in z["class_names"]] if "class_names" in keys else None
        y_train = check_labels(z["y_train"], names, path, "y_train")
        classes = names or [str(i) for i in range(int(y_train.max()) + 1)]
        train = ImageSet(_to_nchw(z["x_train"], path, "x_train"), torch.from_numpy(y_train), classes)
        _check_count(train, path, "train")
        test = None
        if {"x_test", "y_test"} <= keys:
            y_test = torch.from_numpy(check_labels(z["y_test"], classes, path, "y_test"))
            test = ImageSet(_to_nchw(z["x_test"], path, "x_test"), y_test, classes)
            _check_count(test, path, "test")
            if test.image_shape != train.image_shape:
                raise ValueError(
                    f"{path}: test images are {'×'.join(map(str, test.image_shape))} but train images "
                    f"{'×'.join(map(str, train.image_shape))} (C×H×W)"
                )
    return train, test


def _check_count(data: ImageSet, path: Path, split: str) -> None:
    if len(data.images) != len(data.labels):
        raise ValueError(f"{path}: {len(data.images)} {split} images but {len(data.labels)} labels")


def read_csv(path: str | Path, channels: int = 1, classes: list[str] | None = None) -> ImageSet:
    """Read a CSV of rows `label, p0, p1, …` (one header row allowed) holding square images.

    classes: the class names the labels must index (a test file is checked against its training file's classes);
    without them the labels define the classes (0…max, none empty)."""
    path = regular_file(path, "CSV file")
    with open(path) as f:
        first = f.readline(1 << 16)
    skip = 0 if first.split(",")[0].strip().lstrip("-").isdigit() else 1
    try:
        with warnings.catch_warnings():  # an empty file: numpy warns, then the check below says it in our words
            warnings.simplefilter("ignore", UserWarning)
            data = np.loadtxt(path, delimiter=",", skiprows=skip, dtype=np.float64, ndmin=2)
    except ValueError as e:
        raise ValueError(f"{path}: not a CSV of numbers ({e})") from None
    if data.size == 0 or data.shape[1] < 2:
        raise ValueError(f"{path}: no rows of label, pixel values (an empty file, or a header only)")
    if not np.isfinite(data).all():
        row = int(np.argwhere(~np.isfinite(data))[0][0]) + 1 + skip
        raise ValueError(f"{path}: a non-finite value (nan or inf) on line {row}")
    labels, pixels = check_labels(data[:, 0], classes, path, "labels", note_floats=False), data[:, 1:].astype(np.int64)
    side = math.isqrt(pixels.shape[1] // channels)
    if side * side * channels != pixels.shape[1]:
        raise ValueError(f"{path}: {pixels.shape[1]} pixel columns is not a square image of {channels} channel(s)")
    images = pixels.reshape(-1, channels, side, side).clip(0, 255).astype(np.uint8)
    classes = classes or [str(i) for i in range(int(labels.max()) + 1)]
    return ImageSet(torch.from_numpy(images), torch.from_numpy(labels), classes)
