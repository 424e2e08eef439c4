"""`masks:PATH` — images and, beside them, same-named mask PNGs holding a class index per pixel.

    PATH/classes.txt                      the object classes, one a line (a first line `background` is kept as it is)
    PATH/images/train/000001.png          images, in train/, val/, test/ sub-folders (or directly in images/)
    PATH/masks/train/000001.png           its mask: 0 background, i the i-th class of classes.txt, 255 ignored

A mask is a grayscale (L, I;16) or palette (P) PNG whose values are class indices (a palette PNG's indices, not
its colours, as Pascal VOC writes them). The classes of the set are `background` then those of classes.txt, so a
mask's value is its class index. Pixels of value IGNORE are left out of the loss and the metrics.

A bad mask — missing, not a class-index image, of another size than its image, or holding an index that is no
class — is one line naming the file; bad masks are skipped (with their images) with one warning listing them, or
stop the read with `strict` (`--strict`), as bad boxes are (`data/boxfiles.py`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cnnlab.data.boxfiles import BoxProblems, common_frame
from cnnlab.data.dataset import ImageSet
from cnnlab.data.images import (
    IMAGE_SUFFIXES,
    ImageReadError,
    channels_mode,
    image_to_tensor,
    open_image,
    to_mode,
)

IGNORE = 255  # a mask value that is no class: left out of the loss and the metrics
BACKGROUND = "background"
SPLITS = ("train", "val", "test")
MASK_MODES = ("L", "P", "I", "I;16")  # single-band images whose values are indices


def mask_classes(root: Path) -> list[str]:
    """`background` and the classes of classes.txt (one a line; a first line naming background is that class)."""
    path = root / "classes.txt"
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    if not names:
        raise ValueError(f"masks:{root}: no class names; write them in {path} (one a line, background not needed)")
    if names[0].lower() in (BACKGROUND, "_background_"):
        names = names[1:]
    if len(names) + 1 >= IGNORE:
        raise ValueError(f"masks:{root}: {len(names)} classes; masks hold at most {IGNORE - 1} besides background")
    return [BACKGROUND, *names]


def mask_splits(root: Path) -> dict[str, tuple[Path, Path]]:
    """split → (its images folder, its masks folder): images/<split> beside masks/<split>, or images/ alone."""
    images, masks = root / "images", root / "masks"
    if not images.is_dir() or not masks.is_dir():
        raise FileNotFoundError(f"masks:{root}: expected images/<split>/ and masks/<split>/ folders")
    parts = {s: (images / s, masks / s) for s in SPLITS if (images / s).is_dir()}
    return parts or {"train": (images, masks)}


def read_mask(path: Path, shown: str, size: tuple[int, int], num_classes: int, problems: BoxProblems):
    """uint8 (H, W) class indices of one mask file, or None (and a problem noted) when it cannot be used."""
    if not path.is_file():
        problems.add(shown, "no mask for this image (expected a PNG of the same name)")
        return None
    try:
        im = open_image(path)
    except ImageReadError as e:
        problems.add(shown, f"not a readable image ({str(e).split(': ', 1)[-1]})")
        return None
    if im.mode not in MASK_MODES:
        problems.add(shown, f"a {im.mode} image; a mask is grayscale or palette, one class index per pixel")
        return None
    if (im.height, im.width) != size:
        problems.add(shown, f"a {im.width}×{im.height} mask for a {size[1]}×{size[0]} image")
        return None
    values = np.asarray(im).astype(np.int64)
    unknown = np.unique(values[(values >= num_classes) & (values != IGNORE)])
    if len(unknown):
        shown_values = ", ".join(map(str, unknown[:5].tolist())) + (" …" if len(unknown) > 5 else "")
        problems.add(shown, f"unknown class index {shown_values} (classes 0–{num_classes - 1}, {IGNORE} ignored)")
        return None
    return values.astype(np.uint8)


def _pairs(root: Path, folder: Path, masks: Path, classes: list[str], problems: BoxProblems) -> list:
    """(image, mask) of every image of `folder` whose mask is good, decoded."""
    pairs = []
    for image in sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
        mask = (masks / image.relative_to(folder)).with_suffix(".png")
        try:
            im = open_image(image)
        except ImageReadError as e:  # an unreadable image is a problem of its pair, reported with the masks
            problems.add(str(image), f"not a readable image ({str(e).split(': ', 1)[-1]})")
            continue
        shown = str(mask.relative_to(root)) if mask.is_relative_to(root) else str(mask)
        values = read_mask(mask, shown, (im.height, im.width), len(classes), problems)
        if values is not None:
            pairs.append((im, values))
    return pairs


def build_mask_set(pairs: list, classes: list[str], source: str, mode: str | None, size) -> ImageSet:
    """The images in memory (mode: L or RGB, None the majority; size (H, W): resize to it, None: all must share
    one) with their masks as `mask` targets (resized nearest-neighbour with their images)."""
    if not pairs:
        raise ValueError(f"{source}: no image with a usable mask")
    mode, (h, w) = common_frame([im for im, _ in pairs], mode, size, source, "the masks follow, nearest-neighbour")
    images, masks = [], []
    for im, values in pairs:
        im, m = to_mode(im, mode), Image.fromarray(values)
        if (im.height, im.width) != (h, w):
            im, m = im.resize((w, h), Image.Resampling.BILINEAR), m.resize((w, h), Image.Resampling.NEAREST)
        images.append(image_to_tensor(im))
        masks.append(torch.from_numpy(np.asarray(m, np.uint8).copy()))
    return ImageSet(torch.stack(images), torch.stack(masks), list(classes), "mask")


def read_masks(
    root: str | Path, mode: str | None = None, size: tuple[int, int] | None = None, strict: bool = False
) -> dict[str, ImageSet]:
    """Every split of a masks folder, its targets `mask` (N, H, W) uint8 class indices."""
    root = Path(root)
    classes = mask_classes(root)
    out: dict[str, ImageSet] = {}
    for split, (folder, masks) in mask_splits(root).items():
        source = f"masks:{root} ({split})"
        problems = BoxProblems(source, strict, noun="mask(s)")
        pairs = _pairs(root, folder, masks, classes, problems)
        problems.report()
        first = out.get("train")  # val and test are read as train was: its mode and size
        keep = (channels_mode(first.images.shape[1]), tuple(first.images.shape[2:])) if first is not None else None
        out[split] = build_mask_set(pairs, classes, source, *(keep or (mode, size)))
    return out
