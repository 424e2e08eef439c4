"""Uploaded bytes → the model's input, in memory: limits checked before decoding, errors as HTTP status + one line.

The equivalent of `cnnlab.data.images.load_model_input` for bytes from a client: the same mode conversion and
resizing, plus the checks a server needs. The size in bytes is checked first, then the header's pixel count (a
decompression bomb is refused before any pixel is decoded), then the decoder itself; the client's file name is
never used, and nothing is written to disk.
"""

from __future__ import annotations

import base64
import io
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from cnnlab.data.images import channels_mode, conform

MAX_BYTES = 10 * 1024 * 1024  # an upload larger than this is refused (413)
MAX_PIXELS = 4096 * 4096  # width × height from the header; larger is refused before decoding (413)
FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP")  # the decoders Pillow may try; any other format is 415
MODES = {"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "I", "I;16", "F"}


class UploadError(ValueError):
    """An upload the server refuses: `status` is the HTTP status (400, 413 or 415), the message one line."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def open_upload(data: bytes, max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """The uploaded image with its header read and checked (size in bytes, pixel count, mode), nothing decoded; or
    UploadError."""
    if not data:
        raise UploadError(400, "empty upload: send an image file in the form field 'image'")
    if len(data) > max_bytes:
        raise UploadError(413, f"upload of {len(data):,} bytes exceeds the limit of {max_bytes:,} bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # never decode what Pillow finds huge
            im = Image.open(io.BytesIO(data), formats=FORMATS)  # reads the header only
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise UploadError(413, f"image too large to decode ({e})".replace("\n", " ")) from None
    except UnidentifiedImageError:
        raise UploadError(415, f"not an image in a supported format ({', '.join(FORMATS)})") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise UploadError(400, f"unreadable image ({e.__class__.__name__}: {e})".replace("\n", " ")) from None
    if im.width * im.height > max_pixels:
        raise UploadError(413, f"image of {im.width}×{im.height} pixels exceeds the limit of {max_pixels:,} pixels")
    if im.mode not in MODES:
        raise UploadError(415, f"unsupported image mode {im.mode} ({im.format}); send grayscale, RGB or RGBA")
    return im


def decode_image(data: bytes | Image.Image, max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode uploaded bytes (or an image `open_upload` returned) into a PIL image (first frame, EXIF orientation
    applied), or raise UploadError."""
    im = data if isinstance(data, Image.Image) else open_upload(data, max_bytes, max_pixels)
    try:
        im.load()  # decodes the first frame only
        im = ImageOps.exif_transpose(im)
    except (OSError, SyntaxError, ValueError, EOFError) as e:  # truncated or corrupt data
        raise UploadError(400, f"truncated or corrupt image ({e.__class__.__name__}: {e})".replace("\n", " ")) from None
    return im


def model_input(im: Image.Image, input_size: Sequence[int]) -> tuple[torch.Tensor, list[str]]:
    """A decoded image as a model with `input_size` (C, H, W) reads it: uint8 (C, H, W), and notes on conversions."""
    c, h, w = input_size
    return conform(im, channels_mode(c), (h, w))


def read_upload(
    data: bytes | Image.Image, input_size: Sequence[int], max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS
) -> tuple[torch.Tensor, list[str]]:
    """Uploaded bytes (or an opened upload) → (uint8 (C, H, W) model input, notes); UploadError for anything the
    server refuses."""
    return model_input(decode_image(data, max_bytes, max_pixels), input_size)


def blank_notes(image: torch.Tensor, spread: int = 8) -> list[str]:
    """A note when the model's input (uint8 (C, H, W)) is blank: every value within `spread` of one another. A network
    still names one of its classes for it, so the answer means nothing."""
    lo, hi = int(image.min()), int(image.max())
    if hi - lo > spread:
        return []
    return [f"the image is blank (every pixel {lo}–{hi} of 255): the prediction means nothing"]


def png_bytes(pixels: np.ndarray) -> bytes:
    """uint8 (H, W), (H, W, 3) or (H, W, 4) → PNG bytes, in memory."""
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def tensor_pixels(image: torch.Tensor) -> np.ndarray:
    """uint8 (C, H, W) → (H, W) for one channel, (H, W, 3) for three."""
    arr = image.numpy()
    return arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)
