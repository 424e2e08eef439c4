"""Reading the official file layouts of the named datasets into (train, test) ImageSets: the IDX pairs of MNIST and
Fashion-MNIST, the CIFAR-10 binary batches."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from cnnlab.data import cifar
from cnnlab.data.dataset import ImageSet
from cnnlab.data.idx import read_idx


def find_file(folder: Path, name: str) -> Path | None:
    """`folder/name`, or its .gz variant, when it is a file; None otherwise."""
    for cand in (folder / name, folder / (name + ".gz")):
        if cand.is_file():
            return cand
    return None


def _read_idx_pair(folder: Path, prefix: str, classes: tuple[str, ...]) -> ImageSet:
    images = read_idx(find_file(folder, f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(find_file(folder, f"{prefix}-labels-idx1-ubyte"))
    if images.ndim != 3 or labels.shape != (images.shape[0],):
        raise ValueError(f"{folder}: {prefix} images {tuple(images.shape)} do not match labels {tuple(labels.shape)}")
    return ImageSet(images.unsqueeze(1), labels.long(), list(classes))


def idx_reader(classes: tuple[str, ...]) -> Callable[[Path], tuple[ImageSet, ImageSet]]:
    """A reader for a folder of MNIST-style IDX files (train-* and t10k-*, .gz or not) with these class names."""
    return lambda folder: (_read_idx_pair(folder, "train", classes), _read_idx_pair(folder, "t10k", classes))


def read_cifar10(folder: Path) -> tuple[ImageSet, ImageSet]:
    """CIFAR-10's binary version: data_batch_1..5.bin → train, test_batch.bin → test."""
    parts = [cifar.read_cifar_bin(folder / f"data_batch_{i}.bin") for i in range(1, 6)]
    train = ImageSet(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]), cifar.CLASSES)
    test = ImageSet(*cifar.read_cifar_bin(folder / "test_batch.bin"), cifar.CLASSES)
    return train, test
