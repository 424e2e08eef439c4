"""Image files ↔ uint8 C×H×W tensors (PIL does the decoding)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


class ImageReadError(ValueError):
    """A file that is not a readable image."""


def open_image(path: str | Path) -> Image.Image:
    """Open and fully decode an image file, upright (EXIF orientation applied, as a phone photo is meant to be seen);
    raise ImageReadError naming the file otherwise.

    Only regular files are read (a FIFO named .png would block forever); an image whose header claims more pixels
    than pillow's decompression-bomb limit (Image.MAX_IMAGE_PIXELS) is refused before it is decoded.
    """
    p = Path(path)
    if p.exists() and not p.is_file():
        raise ImageReadError(f"{path}: not a regular file (a folder, FIFO or device); give an image file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # refuse, do not decode and warn
            with Image.open(p) as im:
                im.load()
                return ImageOps.exif_transpose(im) or im.copy()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageReadError(f"{path}: refused as a possible decompression bomb ({e})") from None
    except FileNotFoundError:
        raise ImageReadError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageReadError(f"{path}: not a readable image ({e.__class__.__name__}: {e})") from None


def check_header(path: str | Path) -> None:
    """Read an image file's header only (nothing decoded); raise ImageReadError naming the file, with the words of
    `open_image`, when it is not an image: an empty file, another kind of file, a decompression bomb."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path):  # parses the header
                pass
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageReadError(f"{path}: refused as a possible decompression bomb ({e})") from None
    except FileNotFoundError:
        raise ImageReadError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageReadError(f"{path}: not a readable image ({e.__class__.__name__}: {e})") from None


def base_mode(im: Image.Image) -> str:
    """'L' for grayscale-like modes, 'RGB' for colour ones (palette images by their palette)."""
    if im.mode in ("L", "LA", "1", "I", "I;16", "F"):
        return "L"
    if im.mode == "P":
        return "RGB" if im.convert("RGB").getextrema() != im.convert("L").convert("RGB").getextrema() else "L"
    return "RGB"


def to_mode(im: Image.Image, mode: str) -> Image.Image:
    """Convert to 'L' or 'RGB'; transparency is composited onto white."""
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im if im.mode == "RGBA" else im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, rgba)
    if im.mode in ("I", "I;16", "F"):
        im = _scaled_to_l(im)
    return im.convert(mode) if im.mode != mode else im


def _scaled_to_l(im: Image.Image, band: int = 256) -> Image.Image:
    """An integer or float image (I, I;16, F) as 8-bit gray: value / max × 255, clipped to 0–255. Computed in bands
    of `band` rows, so a large image never has a float64 copy of the whole (8 bytes a pixel)."""
    top = max(im.getextrema()[1], 1)
    out = np.empty((im.height, im.width), np.uint8)
    for r in range(0, im.height, band):
        rows = np.asarray(im.crop((0, r, im.width, min(r + band, im.height))), dtype=np.float64)
        out[r : r + len(rows)] = np.clip(rows / top * 255, 0, 255).astype(np.uint8)
    return Image.fromarray(out)


def image_to_tensor(im: Image.Image) -> torch.Tensor:
    """PIL image in mode L or RGB → uint8 tensor (C, H, W)."""
    arr = np.asarray(im, dtype=np.uint8)
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return torch.from_numpy(arr.copy())  # a writable, contiguous copy


def tensor_to_image(x: torch.Tensor) -> Image.Image:
    """uint8 tensor (C, H, W) with C = 1 or 3 → PIL image."""
    arr = x.detach().cpu().numpy()
    return Image.fromarray(arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0))


def channels_mode(channels: int) -> str:
    """The PIL mode of images with this many channels: 'L' for 1, 'RGB' for 3."""
    return "L" if channels == 1 else "RGB"


def load_model_input(
    image: str | Path | Image.Image | np.ndarray, input_size: Sequence[int]
) -> tuple[torch.Tensor, list[str]]:
    """An image as a model with `input_size` (C, H, W) takes it: mode and size converted, with notes.

    image: a file, a PIL image, or an array as PIL and numpy hold images — H×W or H×W×C (C = 1, 3 or 4), uint8, or
    float in [0, 1]."""
    c, h, w = input_size
    if isinstance(image, str | Path):
        return load_image(image, channels_mode(c), (h, w))
    if isinstance(image, np.ndarray):
        image = array_to_image(image)
    if not isinstance(image, Image.Image):
        raise TypeError(f"an image is a file path, a PIL image or an H×W(×C) array, not {type(image).__name__}")
    return conform(image, channels_mode(c), (h, w))


def array_to_image(arr: np.ndarray) -> Image.Image:
    """An H×W or H×W×C array (C = 1, 3 or 4; uint8, or float in [0, 1]) → PIL image."""
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ValueError(f"an image array is H×W or H×W×C with C = 1, 3 or 4, got shape {tuple(arr.shape)}")
    if arr.dtype != np.uint8:
        if not np.issubdtype(arr.dtype, np.floating) or not (
            np.isfinite(arr).all() and 0 <= arr.min() <= arr.max() <= 1
        ):
            raise ValueError(f"an image array is uint8 (0–255) or float in [0, 1], got {arr.dtype}")
        arr = np.rint(arr * 255).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(arr))


def load_image(path: str | Path, mode: str, size: tuple[int, int] | None = None) -> tuple[torch.Tensor, list[str]]:
    """Read an image as the model expects it: uint8 (C, H, W) in `mode`, resized to `size` (H, W) if given.

    Returns the tensor and notes that say what was converted, for the user to read.
    """
    image, notes = conform(open_image(path), mode, size)
    return image, [f"{path}: {note}" for note in notes]


def conform(im: Image.Image, mode: str, size: Sequence[int] | None = None) -> tuple[torch.Tensor, list[str]]:
    """A decoded image as a model reads it: uint8 (C, H, W) in `mode` ('L' / 'RGB'), resized (bilinear) to `size`
    (H, W) if given; and a note for each conversion made."""
    notes = []
    if base_mode(im) != mode:
        kind = {"L": "grayscale", "RGB": "RGB"}
        notes.append(f"converted {kind[base_mode(im)]} image to {kind[mode]} as the model expects")
    im = to_mode(im, mode)
    if size is not None and (im.height, im.width) != tuple(size):
        notes.append(f"resized {im.width}×{im.height} to {size[1]}×{size[0]}")
        im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR, reducing_gap=None)
    return image_to_tensor(im), notes
