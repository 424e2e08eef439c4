"""Upload decoding without the server: conversion to the model's mode and size, EXIF orientation, first frame."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from cnnlab.serve.images import UploadError, read_upload


def _encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_gray_upload_for_an_rgb_model():
    x, notes = read_upload(_encode(Image.new("L", (40, 20), 200), "PNG"), (3, 32, 32))
    assert x.shape == (3, 32, 32) and x.dtype.is_floating_point is False
    assert notes == ["converted grayscale image to RGB as the model expects", "resized 40×20 to 32×32"]


def test_transparency_is_composited_on_white():
    x, _ = read_upload(_encode(Image.new("RGBA", (28, 28), (0, 0, 0, 0)), "PNG"), (1, 28, 28))
    assert int(x.min()) == 255


def test_exif_orientation_is_applied():
    im = Image.new("L", (28, 14), 0)
    im.paste(255, (0, 0, 14, 14))  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise when shown
    x, notes = read_upload(_encode(im, "JPEG", exif=exif, quality=95), (1, 14, 28))
    assert "resized 14×28 to 28×14" in notes  # the image is upright (portrait) before resizing
    top, bottom = x[0, :7].float().mean(), x[0, 7:].float().mean()
    assert top > 200 > 50 > bottom  # the white left half is now on top


def test_first_frame_of_an_animation():
    frames = [Image.new("L", (28, 28), v) for v in (255, 0, 0)]
    data = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    x, _ = read_upload(data, (1, 28, 28))
    assert np.asarray(x).min() > 200


def test_pixel_limit_is_checked_before_decoding():
    data = _encode(Image.new("L", (300, 300)), "PNG")
    with pytest.raises(UploadError) as e:
        read_upload(data, (1, 28, 28), max_pixels=200 * 200)
    assert e.value.status == 413
