"""Small scene sets for the task tests: bright shapes on black, one class per shape, pasted by the real generator
and written in the real formats (so that the readers are what is tested)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cnnlab.data.dataset import ImageSet
from cnnlab.data.scenes import make_scenes, write_coco, write_images, write_masks, write_yolo

CLASSES = ["square", "ring", "plus", "cross"]


def shape_objects(n: int = 200, seed: int = 0) -> ImageSet:
    """n 28×28 object images: class k is shape k (filled square, ring, plus, diagonal cross), 14–24 px, off-centre,
    values 150–255 on 0."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 28, 28), np.uint8)
    labels = rng.integers(0, 4, n)
    for img, k in zip(images, labels, strict=True):
        side = int(rng.integers(14, 25))
        top, left = (int(v) for v in rng.integers(0, 28 - side + 1, 2))
        m = np.zeros((side, side), bool)
        if k == 0:
            m[:] = True
        elif k == 1:
            m[:3] = m[-3:] = m[:, :3] = m[:, -3:] = True
        elif k == 2:
            mid = slice(side // 2 - 2, side // 2 + 2)
            m[mid] = m[:, mid] = True
        else:
            i = np.arange(side)
            for d in (-1, 0, 1):
                j = np.clip(i + d, 0, side - 1)
                m[i, j] = m[i, side - 1 - j] = True
        img[top : top + side, left : left + side][m] = int(rng.integers(150, 256))
    return ImageSet(torch.from_numpy(images)[:, None], torch.from_numpy(labels), list(CLASSES))


def write_scene_set(
    out: Path, n_train: int = 240, n_test: int = 60, size: int = 32, count=(1, 1), formats=("yolo", "coco")
) -> Path:
    """A scene set of shapes in YOLO and COCO formats, and with masks if asked (train and test splits)."""
    objects = shape_objects()
    splits = {
        "train": make_scenes(objects, n_train, size, count, scale=(0.4, 0.7), seed=1),
        "test": make_scenes(objects, n_test, size, count, scale=(0.4, 0.7), seed=2),
    }
    out.mkdir(parents=True, exist_ok=True)
    write_images(out, splits)
    if "yolo" in formats:
        write_yolo(out, splits, CLASSES)
    if "coco" in formats:
        write_coco(out, splits, CLASSES)
    if "masks" in formats:
        write_masks(out, splits, CLASSES)
    return out
