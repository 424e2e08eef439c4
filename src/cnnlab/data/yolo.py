"""`yolo:PATH` — a YOLO-format folder: images/ and labels/, one text file of boxes per image.

    PATH/data.yaml (or classes.txt)       class names: `names: [a, b]` or `{0: a, 1: b}`; classes.txt one a line
    PATH/images/train/000001.png          images, in train/, val/, test/ sub-folders (or directly in images/)
    PATH/labels/train/000001.txt          one line per object: `class cx cy w h`, fractions of the image

An image without a label file has no objects. Ultralytics' layout (`images/<split>` beside `labels/<split>`).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from cnnlab.data.boxfiles import Annotated, BoxProblems, build_set, check_box
from cnnlab.data.dataset import ImageSet
from cnnlab.data.images import IMAGE_SUFFIXES, channels_mode

SPLITS = ("train", "val", "test")


def yolo_classes(root: Path) -> list[str]:
    """Class names from data.yaml's `names` (a list, or a mapping of index to name), else classes.txt."""
    for name in ("data.yaml", "dataset.yaml"):
        path = root / name
        if path.is_file():
            try:
                names = (yaml.safe_load(path.read_text()) or {}).get("names")
            except yaml.YAMLError as e:
                raise ValueError(f"{path}: invalid YAML ({getattr(e, 'problem', None) or e})") from None
            if isinstance(names, dict):
                names = [names[k] for k in sorted(names)]
            if isinstance(names, list) and names:
                return [str(n) for n in names]
    path = root / "classes.txt"
    if path.is_file():
        names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        if names:
            return names
    raise ValueError(f"yolo:{root}: no class names; write them in {root / 'classes.txt'} (one a line) or data.yaml")


def yolo_splits(root: Path) -> dict[str, Path]:
    """split → its images folder: images/train, images/val, images/test, or images/ alone as train."""
    images = root / "images"
    if not images.is_dir():
        raise FileNotFoundError(f"yolo:{root}: no images/ folder (expected images/<split>/ and labels/<split>/)")
    parts = {s: images / s for s in SPLITS if (images / s).is_dir()}
    return parts or {"train": images}


def read_label_file(path: Path, shown: str, num_classes: int, problems: BoxProblems) -> list[tuple]:
    """The boxes of one label file, each checked (bad ones are noted in `problems` and left out)."""
    boxes = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        where = f"{shown} line {n}"
        parts = line.split()
        try:
            cls, cx, cy, w, h = int(parts[0]), *map(float, parts[1:])
        except (ValueError, IndexError, TypeError):
            problems.add(where, f"'{line.strip()[:60]}' is not `class cx cy w h` (a class and four numbers)")
            continue
        box = check_box(cls, (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), num_classes, where, problems)
        if box is not None:
            boxes.append(box)
    return boxes


def read_yolo_split(root: Path, split: str, folder: Path, classes: list[str], problems: BoxProblems) -> list:
    labels = root / "labels" / folder.relative_to(root / "images")
    items = []
    for image in sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
        label = (labels / image.relative_to(folder)).with_suffix(".txt")
        shown = str(label.relative_to(root)) if label.is_relative_to(root) else str(label)
        item = Annotated(image, shown)
        if label.is_file():
            before = len(problems.lines)
            item.boxes = read_label_file(label, shown, len(classes), problems)
            item.lost_boxes = len(problems.lines) > before
        items.append(item)
    if not items:
        raise ValueError(f"yolo:{root}: no images in {folder}")
    return items


def read_yolo(
    root: str | Path,
    target: str = "boxes",
    mode: str | None = None,
    size: tuple[int, int] | None = None,
    strict: bool = False,
) -> dict[str, ImageSet]:
    """Every split of a YOLO folder, its targets of kind `target` (boxes, box or label); see `build_set`."""
    root = Path(root)
    parts = yolo_splits(root)
    classes = yolo_classes(root)
    out: dict[str, ImageSet] = {}
    for split, folder in parts.items():
        problems = BoxProblems(f"yolo:{root} ({split})", strict)
        items = read_yolo_split(root, split, folder, classes, problems)
        problems.report()
        first = out.get("train")  # val and test are read as train was: its mode and size
        keep = (channels_mode(first.images.shape[1]), first.images.shape[2:]) if first is not None else (mode, size)
        out[split] = build_set(items, classes, f"yolo:{root} ({split})", target, *keep, strict=strict)
    return out
