"""What the box readers share (`yolo:` and `coco:`): checking boxes, decoding the images, and building an ImageSet
whose targets are the boxes (`boxes`), the one box (`box`) or the class (`label`) of each image.

Readers hand over one `Annotated` per image with its boxes as fractions of the image (x1, y1, x2, y2 in [0, 1]), so
resizing the images needs no arithmetic on the boxes: they are scaled to the decoded size at the end.

A bad box — outside the image, without area, of an unknown class, or a line that is not a box — is one line naming
the file and the line (or the annotation); bad boxes are skipped with one warning listing them, or stop the read
with `strict` (`--strict`), as unreadable images are.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from cnnlab.data.dataset import ImageSet
from cnnlab.data.images import ImageReadError, base_mode, image_to_tensor, open_image, to_mode
from cnnlab.data.targets import PAD, convert

TOLERANCE = 1e-3  # a box this far (fraction of the image) outside is rounding: it is clipped, not refused


@dataclass
class Annotated:
    """One image and its boxes: (class, x1, y1, x2, y2), corners as fractions of the image's width and height."""

    image: Path
    label_file: str  # where its boxes were written (for messages)
    boxes: list[tuple[int, float, float, float, float]] = field(default_factory=list)
    lost_boxes: bool = False  # a bad box of this image was skipped


class BoxProblems:
    """Bad boxes met while reading one source: each a line `where: what`; reported once, at the end."""

    def __init__(self, source: str, strict: bool, noun: str = "box(es)") -> None:
        self.source, self.strict, self.lines, self.noun = source, strict, [], noun

    def add(self, where: str, what: str) -> None:
        if self.strict:
            raise ValueError(f"{where}: {what} (--strict)")
        self.lines.append(f"{where}: {what}")

    def report(self) -> None:
        if self.lines:
            shown = self.lines[:10] + ([f"… and {len(self.lines) - 10} more"] if len(self.lines) > 10 else [])
            warnings.warn(
                f"{len(self.lines)} bad {self.noun} in {self.source} were skipped (--strict stops instead):\n  "
                + "\n  ".join(shown),
                stacklevel=3,
            )


def check_box(
    cls: int, corners: tuple[float, float, float, float], num_classes: int, where: str, problems: BoxProblems
) -> tuple[int, float, float, float, float] | None:
    """The box clipped to the image, or None (and a problem noted) when it cannot be used."""
    x1, y1, x2, y2 = corners
    if not 0 <= cls < num_classes:
        problems.add(where, f"unknown class {cls} (the classes are 0–{num_classes - 1})")
        return None
    if not x2 > x1 or not y2 > y1:
        problems.add(where, f"a box without area (width {x2 - x1:.4g}, height {y2 - y1:.4g})")
        return None
    low, high = min(x1, y1), max(x2, y2)
    if low < -TOLERANCE or high > 1 + TOLERANCE:
        problems.add(where, f"a box outside the image (corners {x1:.4g}, {y1:.4g}, {x2:.4g}, {y2:.4g} of 0–1)")
        return None
    clip = lambda v: min(max(v, 0.0), 1.0)  # noqa: E731
    return cls, clip(x1), clip(y1), clip(x2), clip(y2)


def _decode_all(items: list[Annotated], source: str, strict: bool) -> list[tuple[Annotated, Image.Image]]:
    pics, bad = [], []
    for item in items:
        try:
            pics.append((item, open_image(item.image)))
        except ImageReadError as e:
            bad.append(str(e))
    if bad:
        msg = f"{len(bad)} image file(s) of {source} could not be read and were skipped:\n  " + "\n  ".join(bad)
        if strict:
            raise ImageReadError(msg.replace("were skipped", "(--strict)"))
        warnings.warn(msg, stacklevel=3)
    if not pics:
        raise ValueError(f"{source}: no readable images")
    return pics


def common_frame(
    images: list[Image.Image], mode: str | None, size: tuple[int, int] | None, source: str, follows: str
) -> tuple[str, tuple[int, int]]:
    """The colour mode (`mode`, else the images' majority) and size (H, W) (`size`, else the one all images share:
    several sizes are refused in one line; `follows` says what the targets do when --image-size resizes)."""
    mode = mode or Counter(base_mode(im) for im in images).most_common(1)[0][0]
    if size is None:
        sizes = Counter((im.height, im.width) for im in images)
        if len(sizes) > 1:
            (h, w), _ = sizes.most_common(1)[0]
            raise ValueError(
                f"{source}: images have {len(sizes)} different sizes (most common {w}×{h}); pass --image-size to "
                f"resize them all ({follows})"
            )
        size = next(iter(sizes))
    return mode, size


def build_set(
    items: list[Annotated],
    classes: list[str],
    source: str,
    target: str = "boxes",
    mode: str | None = None,
    size: tuple[int, int] | None = None,
    strict: bool = False,
) -> ImageSet:
    """The images of `items` in memory (mode: L or RGB, None the majority; size: (H, W) to resize to, None: all
    must share one) with targets of kind `target`: `boxes`, `box` (exactly one object per image) or `label`."""
    if target == "box":  # an image whose only box was bad has none left: it goes (the warning named the box)
        items = [it for it in items if it.boxes or not it.lost_boxes]
    pics = _decode_all(items, source, strict)
    mode, (h, w) = common_frame([im for _, im in pics], mode, size, source, "the boxes follow")
    images, boxes = [], torch.full((len(pics), max(1, max(len(it.boxes) for it, _ in pics)), 5), 0.0)
    boxes[..., 0] = PAD
    for i, (item, im) in enumerate(pics):
        im = to_mode(im, mode)
        if (im.height, im.width) != (h, w):
            im = im.resize((w, h), Image.Resampling.BILINEAR)
        images.append(image_to_tensor(im))
        for j, (cls, x1, y1, x2, y2) in enumerate(item.boxes):
            boxes[i, j] = torch.tensor([cls, x1 * w, y1 * h, x2 * w, y2 * h])
    targets = convert("boxes", boxes, target, [it.label_file for it, _ in pics])
    return ImageSet(torch.stack(images), targets, list(classes), target)
