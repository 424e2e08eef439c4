"""`load_dataset`: a dataset name or a folder:/npz:/csv:/yolo:/coco: source → DataSplits (train, validation carved
from train, test), converted to a colour mode and resized on request (boxes and masks follow the pixels)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

from cnnlab.data.arrays import read_csv, read_npz
from cnnlab.data.catalog import get_spec
from cnnlab.data.coco import read_coco
from cnnlab.data.dataset import DataSplits, ImageSet, resolve_split_size, split_off
from cnnlab.data.fetch import DatasetNotFound, download, how_to_get, locate
from cnnlab.data.folder import class_folders, read_image_folder
from cnnlab.data.images import channels_mode
from cnnlab.data.masks import read_masks
from cnnlab.data.targets import KINDS
from cnnlab.data.yolo import read_yolo
from cnnlab.files import Read

BOX_SOURCES = ("yolo", "coco")  # sources whose targets are boxes
MASK_SOURCES = ("masks",)  # sources whose targets are masks


def _default_val(val_split: float | int | None, n: int) -> int:
    # named 60 k sets: 5,000 (Keras-course convention); other sources: 10 %
    if val_split is None:
        return 5000 if n >= 50_000 else max(1, n // 10) if n >= 10 else 0
    return resolve_split_size(val_split, n)


def load_dataset(
    spec: str,
    data_dir: str | Path | None = None,
    val_split: float | int | None = None,
    seed: int = 0,
    mode: str | None = None,
    image_size: int | tuple[int, int] | None = None,
    strict: bool = False,
    allow_download: bool = True,
    target: str = "label",
) -> DataSplits:
    """Load a dataset by name (`fashion-mnist`, `mnist`, `cifar10`) or source (`folder:`, `npz:`, `csv:`, and with
    boxes `yolo:`, `coco:`).

    val_split: validation samples carved from train (count or fraction; None → 5,000 for the 60 k sets, 10 %
    otherwise; 0 → none). mode: 'L' or 'RGB' to convert to. image_size: resize every image to this size.
    target: the kind of targets a task trains on (data/targets.py): label, box (one object per image) or boxes.
    """
    kind, _, path = spec.partition(":")
    notes: list[str] = []
    _check_target(spec, kind if path else None, target)
    if path:
        source = Path(path).expanduser()
        train, val, test = _read_source(spec, kind, source, mode, image_size, strict, target)
        name, where = spec, str(source)
    else:
        ds = get_spec(spec)
        folder = locate(spec, data_dir)
        if folder is None:
            if not allow_download or os.environ.get("CNNLAB_OFFLINE"):
                raise DatasetNotFound(how_to_get(ds, data_dir))
            folder = download(spec)
        (train, test), val = ds.read(folder), None
        name, where = spec, str(folder)

    if val is None:
        train, val = split_off(train, _default_val(val_split, len(train)), seed)
    splits = [s for s in (train, val, test) if s is not None]
    if mode is not None:
        want = 1 if mode == "L" else 3
        for s in splits:
            if s.images.shape[1] != want:
                notes.append(f"converted {s.images.shape[1]}-channel images to mode {mode}")
                s.images = _convert_channels(s.images, want)
    if image_size is not None:
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if tuple(train.images.shape[2:]) != size:
            notes.append(f"resized {train.images.shape[3]}×{train.images.shape[2]} images to {size[1]}×{size[0]}")
        train, val, test = (s.resized(size) if s is not None else None for s in (train, val, test))
    return DataSplits(name, train, val, test, train.classes, where, notes)


def _check_target(spec: str, kind: str | None, target: str) -> None:
    """Refuse asking boxes of a source that has class labels only."""
    if target not in KINDS:
        raise ValueError(f"unknown target kind '{target}'; choose from {', '.join(KINDS)}")
    if (target == "mask") != (kind in MASK_SOURCES):
        raise ValueError(
            f"{spec} has {'masks' if kind in MASK_SOURCES else 'no masks'}; a segment task reads masks:PATH and only "
            "it does (`cnnlab datasets make fashion-scenes --masks --out DIR` writes such a set)"
        )
    if target not in ("label", "mask") and kind not in BOX_SOURCES:
        raise ValueError(
            f"{spec} has class labels, not {KINDS[target]}; a box task reads yolo:PATH or coco:PATH "
            "(`cnnlab datasets make fashion-scenes --out DIR` writes such a set)"
        )


def data_reads(spec: str | None, data_dir: str | Path | None = None) -> list[Read]:
    """What a data source reads, for outputs to leave alone: the file or folder of folder:/npz:/csv:, or for a named
    set --data-dir and the folder its files are found in."""
    if not spec:
        return []
    kind, sep, path = spec.partition(":")
    if sep and path:
        return [Read(Path(path).expanduser(), "the data")]
    reads = [Read(data_dir, "the data folder")] if data_dir else []
    try:
        found = locate(spec, data_dir)
    except ValueError:  # not a known name: its reader says so
        found = None
    if found is not None:
        reads.append(Read(found, f"the {spec} data folder"))
    return reads


def _read_source(
    spec: str,
    kind: str,
    source: Path,
    mode: str | None,
    image_size: int | tuple[int, int] | None,
    strict: bool,
    target: str = "label",
) -> tuple[ImageSet, ImageSet | None, ImageSet | None]:
    """(train, val, test) of a folder:/npz:/csv:/yolo:/coco: source; val is None unless the source has its own."""
    if not source.exists():
        raise FileNotFoundError(f"{spec}: {source} does not exist")
    if kind in MASK_SOURCES:
        parts = read_masks(
            source, mode, (image_size, image_size) if isinstance(image_size, int) else image_size, strict
        )
        return parts["train"], parts.get("val"), parts.get("test")
    if kind in BOX_SOURCES:
        size = (image_size, image_size) if isinstance(image_size, int) else image_size
        parts = (read_yolo if kind == "yolo" else read_coco)(source, target, mode, size, strict)
        return parts["train"], parts.get("val"), parts.get("test")
    if kind == "folder":
        parts = {p: source / p for p in ("train", "val", "test") if (source / p).is_dir()}
        size = (image_size, image_size) if isinstance(image_size, int) else image_size
        if "train" not in parts:
            return read_image_folder(source, mode=mode, size=size, strict=strict), None, None
        train = read_image_folder(parts["train"], mode=mode, size=size, strict=strict)
        kw = dict(
            classes=train.classes,
            mode=channels_mode(train.images.shape[1]),
            size=tuple(train.images.shape[2:]),
            strict=strict,
        )
        for split in ("test", "val"):
            extra = sorted(set(class_folders(parts[split])) - set(train.classes)) if split in parts else []
            if extra:
                warnings.warn(
                    f"{parts[split]}: class folder(s) {', '.join(extra)} are not in train/ and are left out "
                    "(a model cannot learn a class it never sees in training)",
                    stacklevel=2,
                )
        test = read_image_folder(parts["test"], **kw) if "test" in parts else None
        val = read_image_folder(parts["val"], **kw) if "val" in parts else None
        return train, val, test
    if kind == "npz":
        train, test = read_npz(source)
        return train, None, test
    if kind == "csv":
        files = sorted(source.glob("*.csv")) if source.is_dir() else [source]
        train_f = [f for f in files if "test" not in f.name.lower()]
        test_f = [f for f in files if "test" in f.name.lower()]
        if not train_f:
            raise ValueError(f"{spec}: no training CSV (a file without 'test' in its name)")
        train = read_csv(train_f[0])
        test = read_csv(test_f[0], classes=train.classes) if test_f else None
        if test is not None and test.image_shape != train.image_shape:
            raise ValueError(
                f"{test_f[0]}: test images are {'×'.join(map(str, test.image_shape))} but the training "
                f"file's are {'×'.join(map(str, train.image_shape))} (C×H×W)"
            )
        return train, None, test
    raise ValueError(
        f"unknown data source '{kind}:'; use folder:PATH, npz:PATH, csv:PATH, yolo:PATH, coco:PATH or masks:PATH"
    )


def _convert_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    if channels == 3:
        return images.expand(-1, 3, -1, -1).contiguous()
    # ITU-R 601-2 luma, as PIL's convert("L")
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (images.float() * weights).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
