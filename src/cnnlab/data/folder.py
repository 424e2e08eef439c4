"""`folder:PATH` — one sub-folder per class of image files (optionally under train/, val/, test/)."""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import torch
from PIL import Image

from cnnlab.data.dataset import ImageSet
from cnnlab.data.images import IMAGE_SUFFIXES, ImageReadError, base_mode, image_to_tensor, open_image, to_mode


def class_folders(root: Path) -> list[str]:
    """Sorted names of the sub-folders of `root` that hold at least one file."""
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def image_files(root: Path, classes: list[str]) -> list[tuple[Path, int]]:
    """(file, class index) of every file under root/<class>/, in a fixed order (class, then path)."""
    return [
        (p, i)
        for i, c in enumerate(classes)
        if (root / c).is_dir()
        for p in sorted((root / c).rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    ]


def decode(path: Path, mode: str, size: tuple[int, int]) -> torch.Tensor:
    """One image file as uint8 (C, H, W) in `mode`, resized (bilinear) to `size` (H, W): what a folder loads."""
    im = to_mode(open_image(path), mode)
    if (im.height, im.width) != tuple(size):
        im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return image_to_tensor(im)


def report_unreadable(root: Path, bad: list[str], strict: bool) -> None:
    """The files of a folder that could not be read: one warning listing them (they are skipped), or with `strict`
    one error. The same words whether the folder is read into memory or streamed."""
    if not bad:
        return
    msg = f"{len(bad)} file(s) in {root} could not be read and were skipped:\n  " + "\n  ".join(bad)
    if strict:
        raise ImageReadError(msg.replace("were skipped", "(--strict)"))
    warnings.warn(msg, stacklevel=3)


def read_image_folder(
    root: str | Path,
    classes: list[str] | None = None,
    mode: str | None = None,
    size: tuple[int, int] | None = None,
    strict: bool = False,
) -> ImageSet:
    """Read every image under root/<class>/ into memory.

    mode: 'L' or 'RGB'; None picks the majority mode of the files. size: (H, W) to resize to; None requires all
    images to share one size. Unreadable files are skipped with one warning listing them, or raise when `strict`.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    classes = classes or class_folders(root)
    if not classes:
        raise ValueError(f"{root}: no class sub-folders (expected {root}/<class>/<image files>)")
    files = image_files(root, classes)
    pics, labels, bad = [], [], []
    for path, label in files:
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            bad.append(f"{path} (not an image file type)")
            continue
        try:
            pics.append(open_image(path))
            labels.append(label)
        except ImageReadError as e:
            bad.append(str(e))
    report_unreadable(root, bad, strict)
    if not pics:
        raise ValueError(f"{root}: no readable images in {len(classes)} class folder(s)")
    empty = [c for i, c in enumerate(classes) if i not in set(labels)]
    if empty:
        warnings.warn(
            f"{root}: {len(empty)} class folder(s) hold no readable image: {', '.join(empty[:10])}; "
            "they stay classes the model can predict but never sees",
            stacklevel=2,
        )
    cmyk = sum(im.mode == "CMYK" for im in pics)
    if cmyk:
        warnings.warn(f"{root}: {cmyk} CMYK image(s) converted to {mode or 'RGB'} (colours may shift)", stacklevel=2)
    if mode is None:
        mode = Counter(base_mode(im) for im in pics).most_common(1)[0][0]
    if size is None:
        sizes = Counter((im.height, im.width) for im in pics)
        if len(sizes) > 1:
            (h, w), _ = sizes.most_common(1)[0]
            raise ValueError(
                f"{root}: images have {len(sizes)} different sizes (most common {w}×{h}); "
                "resize them all to one with --image-size (train, lr-find, augment)"
            )
        size = next(iter(sizes))
    tensors = []
    for im in pics:
        im = to_mode(im, mode)
        if (im.height, im.width) != tuple(size):
            im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        tensors.append(image_to_tensor(im))
    return ImageSet(torch.stack(tensors), torch.tensor(labels), list(classes))
