"""Drawing predictions on images (pillow): enlarge a small model input, draw boxes, add a caption."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image, ImageDraw

from cnnlab.data.images import tensor_to_image

MIN_SIDE = 256  # small inputs (28×28, 64×64) are enlarged to at least this, pixels kept square (nearest)
# 16 colours far apart (no two classes of a 16-class set share one; Fashion-MNIST's 10 + background all differ)
COLOURS = (
    "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45",
    "#ffe119", "#469990", "#9a6324", "#800000", "#dcbeff", "#808000", "#000075", "#aaffc3",
)  # fmt: skip


def ink_on(colour: str) -> str:
    """Black text on a light colour, white on a dark one (the page's `inkOn`)."""
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 150 else "white"


def enlarge(image: torch.Tensor) -> tuple[Image.Image, int]:
    """uint8 (C, H, W) → an RGB image enlarged by a whole factor to at least MIN_SIDE pixels, and the factor."""
    im = tensor_to_image(image).convert("RGB")
    factor = max(1, -(-MIN_SIDE // min(im.size)))
    return im.resize((im.width * factor, im.height * factor), Image.Resampling.NEAREST), factor


def draw_box(im: Image.Image, box: Sequence[float], factor: int, label: str, colour: str = COLOURS[0]) -> Image.Image:
    """`box` (x1, y1, x2, y2 in pixels of the original image) drawn on `im` (enlarged `factor`×) with `label`."""
    draw = ImageDraw.Draw(im)
    x1, y1, x2, y2 = (float(v) * factor for v in box)
    width = max(2, factor // 2)
    draw.rectangle([x1, y1, x2 - 1, y2 - 1], outline=colour, width=width)
    text_box = draw.textbbox((0, 0), label)
    tw, th = text_box[2] - text_box[0], text_box[3] - text_box[1]
    top = y1 - th - 4 if y1 - th - 4 >= 0 else y1 + width
    draw.rectangle([x1, top, x1 + tw + 4, top + th + 4], fill=colour)
    draw.text((x1 + 2, top + 1), label, fill=ink_on(colour))
    return im


def caption(im: Image.Image, text: str) -> Image.Image:
    """`im` with a white strip below holding `text`."""
    out = Image.new("RGB", (im.width, im.height + 18), "white")
    out.paste(im, (0, 0))
    ImageDraw.Draw(out).text((4, im.height + 3), text, fill="black")
    return out
