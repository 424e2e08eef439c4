"""Target kinds: what an `ImageSet` holds next to its images, and how each kind follows the pixels.

| kind    | tensor                      | meaning                                                                  |
|---------|-----------------------------|--------------------------------------------------------------------------|
| `label` | (N,) int64                  | the class of each image (classification)                                 |
| `box`   | (N, 5) float32              | one object per image: [class, x1, y1, x2, y2] in pixels (localization)   |
| `boxes` | (N, M, 5) float32           | up to M objects per image, rows padded with class −1 (detection)         |
| `mask`  | (N, H, W) uint8             | the class of each pixel, 0 = background (segmentation)                   |

Box corners are pixel-edge coordinates: an object covering pixel columns 3…7 has x1 = 3, x2 = 8 (COCO's
convention: the width is x2 − x1 pixels). Everything that changes the pixels' geometry changes the targets the same
way: `resize` here (the reader's `--image-size`), and the flips, shifts and affine maps of `data/augment.py`, which
call `flip_boxes`, `shift_boxes` and `affine_boxes` on the same random draws.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

KINDS = {  # kind → what it is, in words (messages)
    "label": "class labels",
    "box": "one box per image",
    "boxes": "boxes",
    "mask": "a class per pixel",
}
PAD = -1  # class of the padding rows of `boxes`


def check(kind: str, targets: torch.Tensor, n: int, size: tuple[int, int]) -> torch.Tensor:
    """`targets` for `n` images of `size` (H, W) in the dtype of `kind`; a shape that does not fit is a ValueError."""
    if kind not in KINDS:
        raise ValueError(f"unknown target kind '{kind}'; choose from {', '.join(KINDS)}")
    want = {"label": (n,), "box": (n, 5), "mask": (n, *size)}.get(kind)
    ok = tuple(targets.shape) == want if want else targets.ndim == 3 and targets.shape[0] == n and targets.shape[2] == 5
    if not ok:
        shape = want if want else (n, "M", 5)
        raise ValueError(f"{n} images but {kind} targets of shape {tuple(targets.shape)} (expected {shape})")
    dtype = {"label": torch.int64, "mask": torch.uint8}.get(kind, torch.float32)
    return targets.to(dtype)


def class_ids(kind: str, targets: torch.Tensor) -> torch.Tensor:
    """The class index of each image (`label`, `box`); of each object (`boxes`, pads −1); of each pixel (`mask`)."""
    if kind in ("label", "mask"):
        return targets.long()
    return targets[..., 0].long()


def relabel(kind: str, targets: torch.Tensor, mapping: torch.Tensor) -> torch.Tensor:
    """Targets with every class index i replaced by mapping[i] (padding rows kept)."""
    if kind == "label":
        return mapping[targets]
    if kind == "mask":  # a value past the classes (255: ignored) stays what it is
        lookup = torch.arange(256, dtype=targets.dtype)
        lookup[: len(mapping)] = mapping.to(targets.dtype)
        return lookup[targets.long()]
    out = targets.clone()
    cls = out[..., 0].long()
    real = cls >= 0
    out[..., 0] = torch.where(real, mapping[cls.clamp_min(0)].to(out.dtype), out[..., 0])
    return out


def resize(kind: str, targets: torch.Tensor, old: tuple[int, int], new: tuple[int, int]) -> torch.Tensor:
    """The targets of images resized from `old` to `new` (H, W): boxes scaled, masks nearest-neighbour."""
    if kind == "label" or tuple(old) == tuple(new):
        return targets
    if kind == "mask":
        out = F.interpolate(targets[:, None].float(), size=tuple(new), mode="nearest")
        return out[:, 0].round().to(targets.dtype)
    sy, sx = new[0] / old[0], new[1] / old[1]
    scale = torch.tensor([1.0, sx, sy, sx, sy], dtype=targets.dtype)
    out = targets * scale
    return _mark_pads(kind, out, targets)


def _mark_pads(kind: str, out: torch.Tensor, before: torch.Tensor) -> torch.Tensor:
    """Keep padding rows padding (class −1, zero box) after a geometric change."""
    if kind != "boxes":
        return out
    pad = before[..., 0] < 0
    out[pad] = torch.tensor([PAD, 0.0, 0.0, 0.0, 0.0], dtype=out.dtype, device=out.device)
    return out


def clip_boxes(kind: str, boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Boxes clipped to the image; in `boxes`, an object left with no area becomes padding (it left the image)."""
    h, w = size
    out = boxes.clone()
    out[..., 1::2] = out[..., 1::2].clamp(0, w)
    out[..., 2::2] = out[..., 2::2].clamp(0, h)
    if kind == "boxes":
        gone = (out[..., 3] <= out[..., 1]) | (out[..., 4] <= out[..., 2])
        out[gone & (out[..., 0] >= 0)] = torch.tensor([PAD, 0.0, 0.0, 0.0, 0.0], dtype=out.dtype, device=out.device)
    return out


def _per_sample(boxes: torch.Tensor) -> torch.Tensor:
    """(B, 5) or (B, M, 5) → (B, M, 5) view."""
    return boxes.unsqueeze(1) if boxes.ndim == 2 else boxes


def flip_boxes(kind: str, boxes: torch.Tensor, flip: torch.Tensor, width: int) -> torch.Tensor:
    """Boxes of images mirrored left–right where `flip` (B,) is True: x1' = W − x2, x2' = W − x1."""
    b = _per_sample(boxes)
    mirrored = b.clone()
    mirrored[..., 1], mirrored[..., 3] = width - b[..., 3], width - b[..., 1]
    out = torch.where(flip.view(-1, 1, 1), mirrored, b)
    return _mark_pads(kind, out.view_as(boxes), boxes)


def shift_boxes(kind: str, boxes: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, size: tuple[int, int]):
    """Boxes of images shifted by whole pixels (dy down, dx right; (B,) each), clipped to the image."""
    b = _per_sample(boxes).clone()
    b[..., 1::2] += dx.view(-1, 1, 1).to(b.dtype)
    b[..., 2::2] += dy.view(-1, 1, 1).to(b.dtype)
    return clip_boxes(kind, _mark_pads(kind, b.view_as(boxes), boxes), size)


def affine_boxes(
    kind: str, boxes: torch.Tensor, degrees: torch.Tensor, scale: torch.Tensor, size: tuple[int, int]
) -> torch.Tensor:
    """Boxes of images rotated counter-clockwise by `degrees` and zoomed by `scale` about the centre, as
    `data.augment.affine` moves the pixels: the box of the four moved corners, clipped to the image.

    affine() samples input = (1/s)·R(θ)·output in [-1, 1] coordinates (y down), so a point moves to
    output = s·R(θ)ᵀ·input. A rotated box's corners enclose the rotated object, so the new box holds every pixel
    of the object (it is larger than the object's own tight box unless θ is a multiple of 90°).
    """
    h, w = size
    b = _per_sample(boxes)
    rad = degrees.double() * (math.pi / 180.0)
    cos, sin, s = torch.cos(rad).view(-1, 1, 1), torch.sin(rad).view(-1, 1, 1), scale.double().view(-1, 1, 1)
    xs = torch.stack([b[..., 1], b[..., 3], b[..., 3], b[..., 1]], -1).double()  # (B, M, 4) corners
    ys = torch.stack([b[..., 2], b[..., 2], b[..., 4], b[..., 4]], -1).double()
    u, v = xs * (2.0 / w) - 1, ys * (2.0 / h) - 1  # pixel edges → [-1, 1]
    ou, ov = s * (cos * u + sin * v), s * (-sin * u + cos * v)
    px, py = (ou + 1) * (w / 2.0), (ov + 1) * (h / 2.0)
    out = b.clone()
    out[..., 1], out[..., 3] = px.min(-1).values.to(b.dtype), px.max(-1).values.to(b.dtype)
    out[..., 2], out[..., 4] = py.min(-1).values.to(b.dtype), py.max(-1).values.to(b.dtype)
    return clip_boxes(kind, _mark_pads(kind, out.view_as(boxes), boxes), size)


def boxes_to_box(boxes: torch.Tensor, where: list[str] | None = None) -> torch.Tensor:
    """`boxes` (N, M, 5) with exactly one object per image → `box` (N, 5); another count is a ValueError naming
    the image (`where[i]`, e.g. its label file) and what to do."""
    counts = (boxes[..., 0] >= 0).sum(1)
    wrong = (counts != 1).nonzero().flatten()
    if len(wrong):
        i = int(wrong[0])
        name = where[i] if where else f"image {i}"
        raise ValueError(
            f"{name}: {int(counts[i])} objects, but a one-object task (localize) needs exactly one per image "
            f"({len(wrong):,} image(s) differ); several objects per image are detection's, not localization's"
        )
    first = (boxes[..., 0] >= 0).float().argmax(1)
    return boxes[torch.arange(len(boxes)), first]


def convert(kind: str, targets: torch.Tensor, want: str, where: list[str] | None = None) -> torch.Tensor:
    """Targets of `kind` as `want`: boxes → one box (exactly one object per image), one box → its class label."""
    if kind == want:
        return targets
    if (kind, want) == ("boxes", "box"):
        return boxes_to_box(targets, where)
    if (kind, want) == ("boxes", "label"):
        return boxes_to_box(targets, where)[:, 0].long()
    if (kind, want) == ("box", "label"):
        return targets[:, 0].long()
    raise ValueError(f"the data have {KINDS[kind]}, not {KINDS[want]}")
