"""Classify images with a model exported by `cnnlab export`, using only onnxruntime, numpy and pillow.

    python examples/onnx_predict.py model.onnx shirt.png [more images ...]

No torch and no cnnlab: the input size and colour mode, mean / std, class names and flip TTA are read from the
ONNX file's metadata props. The output lines are those of `cnnlab predict`.
"""

import json
import sys

import numpy as np
import onnxruntime as ort
from PIL import Image


def load(path: str, mode: str, height: int, width: int) -> np.ndarray:
    """An image file → float32 (C, H, W) with values 0–255, in `mode` ('L' or 'RGB') and at the model's size."""
    im = Image.open(path)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = Image.alpha_composite(Image.new("RGBA", im.size, (255, 255, 255, 255)), im.convert("RGBA"))
    im = im.convert(mode)
    if im.size != (width, height):
        im = im.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=None)
    x = np.asarray(im, dtype=np.float32)
    return x[None] if x.ndim == 2 else x.transpose(2, 0, 1)


def main(model_path: str, images: list[str], top: int = 3) -> None:
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    if "classes" not in meta:
        sys.exit(f"{model_path}: no cnnlab metadata; export the model with `cnnlab export`")
    classes = json.loads(meta["classes"])
    c, h, w = json.loads(meta["input_size"])
    mean = np.asarray(json.loads(meta["mean"]), np.float32).reshape(1, c, 1, 1)
    std = np.asarray(json.loads(meta["std"]), np.float32).reshape(1, c, 1, 1)
    x = np.stack([load(p, meta["input_mode"], h, w) for p in images])
    x = ((x / 255 - mean) / std).astype(np.float32)  # the normalisation the model was trained with
    name = session.get_inputs()[0].name
    logits = session.run(None, {name: x})[0]
    if meta.get("tta") == "flip":  # the run averaged each image with its mirror image
        logits = (logits + session.run(None, {name: np.ascontiguousarray(x[..., ::-1])})[0]) / 2
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    for path, p in zip(images, probs, strict=True):
        best = np.argsort(-p, kind="stable")[:top]
        print(f"{path}: " + ", ".join(f"{classes[i]} {p[i]:.1%}" for i in best))


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
