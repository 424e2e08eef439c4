"""`coco:PATH` — COCO-style JSON: `images` (id, file_name, width, height), `annotations` (image_id, category_id,
`bbox` [x, y, w, h] in pixels) and `categories` (id, name).

    PATH/train.json [val.json, test.json]                 one file per split (or annotations/instances_<split>.json)
    PATH/train.json's file_name: images/train/000001.png  relative to PATH (or to PATH/images/<split>/, COCO's way)

PATH may also be one .json file: its images are the training split. Classes are the categories in the order of
their ids (ids need not be 0… or contiguous).
"""

from __future__ import annotations

import json
from pathlib import Path

from cnnlab.data.boxfiles import Annotated, BoxProblems, build_set, check_box
from cnnlab.data.dataset import ImageSet
from cnnlab.data.images import channels_mode

SPLITS = ("train", "val", "test")


def coco_files(path: Path) -> dict[str, Path]:
    """split → its JSON file."""
    if path.is_file():
        return {"train": path}
    found = {}
    for split in SPLITS:
        for candidate in (path / f"{split}.json", path / "annotations" / f"instances_{split}.json"):
            if candidate.is_file():
                found[split] = candidate
                break
    if "train" not in found:
        raise FileNotFoundError(f"coco:{path}: no train.json (or annotations/instances_train.json)")
    return found


def _load(path: Path) -> dict:
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    if not isinstance(raw, dict) or not all(isinstance(raw.get(k), list) for k in ("images", "categories")):
        raise ValueError(f"{path}: not COCO-style JSON (it needs lists 'images', 'annotations' and 'categories')")
    return raw


def coco_classes(raw: dict, path: Path) -> tuple[list[str], dict[int, int]]:
    """Class names in the order of the category ids, and category id → class index."""
    try:
        cats = sorted((int(c["id"]), str(c["name"])) for c in raw["categories"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{path}: every category needs an 'id' and a 'name'") from None
    if not cats:
        raise ValueError(f"{path}: no categories")
    return [name for _, name in cats], {cid: i for i, (cid, _) in enumerate(cats)}


def _image_path(path: Path, root: Path, split: str, file_name: str) -> Path:
    """Where an image's file_name points: beside the JSON file, in root, or in root/images/<split>/ (COCO's)."""
    for base in (path.parent, root, root / "images" / split, root / split):
        if (base / file_name).is_file():
            return base / file_name
    return path.parent / file_name  # missing: the image reader says so, naming it


def coco_items(raw: dict, path: Path, root: Path, split: str, ids: dict[int, int], problems: BoxProblems) -> list:
    """One `Annotated` per image of the file, its annotations checked (bad ones noted and left out)."""
    items, sizes = {}, {}
    for n, im in enumerate(raw["images"]):
        try:
            image_id, name, w, h = im["id"], str(im["file_name"]), float(im["width"]), float(im["height"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{path}: images[{n}] needs an id, a file_name, a width and a height") from None
        items[image_id] = Annotated(_image_path(path, root, split, name), f"{path.name} image {name}")
        sizes[image_id] = (w, h)
    for n, ann in enumerate(raw.get("annotations") or []):
        where = f"{path.name} annotation {ann.get('id', n) if isinstance(ann, dict) else n}"
        try:
            image_id, cat = ann["image_id"], int(ann["category_id"])
            x, y, bw, bh = (float(v) for v in ann["bbox"])
        except (KeyError, TypeError, ValueError):
            problems.add(where, "not an annotation with image_id, category_id and bbox [x, y, w, h]")
            continue
        if image_id not in items:
            problems.add(where, f"image_id {image_id} is not in 'images'")
            continue
        item, (w, h) = items[image_id], sizes[image_id]
        cls = ids.get(cat, -1)
        if cls < 0:
            problems.add(where, f"unknown category_id {cat} (the categories are {', '.join(map(str, ids))})")
            item.lost_boxes = True
            continue
        box = check_box(
            cls, (x / w, y / h, (x + bw) / w, (y + bh) / h), len(ids), f"{where} ({item.image.name})", problems
        )
        if box is None:
            item.lost_boxes = True
        else:
            item.boxes.append(box)
    return list(items.values())


def read_coco(
    path: str | Path,
    target: str = "boxes",
    mode: str | None = None,
    size: tuple[int, int] | None = None,
    strict: bool = False,
) -> dict[str, ImageSet]:
    """Every split of a COCO-style source, its targets of kind `target` (boxes, box or label); see `build_set`.
    The classes are the training file's; another split naming other categories is refused."""
    path = Path(path)
    files = coco_files(path)
    root = path if path.is_dir() else path.parent
    out: dict[str, ImageSet] = {}
    classes: list[str] | None = None
    for split, file in files.items():
        raw = _load(file)
        names, ids = coco_classes(raw, file)
        if classes is not None and names != classes:
            raise ValueError(f"{file}: its categories {names[:5]}… differ from the training file's {classes[:5]}…")
        classes = names
        problems = BoxProblems(f"coco:{path} ({split})", strict)
        items = coco_items(raw, file, root, split, ids, problems)
        problems.report()
        if not items:
            raise ValueError(f"{file}: no images")
        first = out.get("train")  # val and test are read as train was: its mode and size
        keep = (channels_mode(first.images.shape[1]), first.images.shape[2:]) if first is not None else (mode, size)
        out[split] = build_set(items, names, f"coco:{path} ({split})", target, *keep, strict=strict)
    return out
