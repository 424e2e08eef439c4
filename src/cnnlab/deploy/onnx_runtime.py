"""Run an ONNX classifier with ONNX Runtime: uint8 images → logits, `cnnlab evaluate` and `cnnlab predict` on it.

The numbers and the output format are those of a run folder: the same normalisation, flip TTA as the file records,
`evaluate.metrics_from_logits` for the report and the same dictionaries as `predict.predict_files`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from cnnlab.data.dataset import ImageSet
from cnnlab.data.images import load_model_input
from cnnlab.evaluate import check_compatible, metrics_from_logits
from cnnlab.infer import EVAL_BATCH


def is_onnx_path(path: str | Path) -> bool:
    return str(path).lower().endswith(".onnx")


def open_session(path: str | Path, threads: int | None = None):
    """An onnxruntime InferenceSession on the CPU; a missing file or one that is not ONNX → one-line error."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ValueError("running ONNX files needs the deploy extra: pip install 'cnnlab[deploy]'") from None
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such ONNX file")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # errors only: no warnings about unused initializers on stderr
    if threads:
        opts.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own error types
        first = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
        raise ValueError(f"{path}: not a valid ONNX model ({first[:160]})") from None


def _floats(text: str | Sequence[float] | None, what: str) -> list[float] | None:
    if text is None or not isinstance(text, str):
        return None if text is None else [float(v) for v in text]
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--{what} wants numbers separated by commas, got '{text}'") from None


class OnnxClassifier:
    """An ONNX classifier and how to feed it: cnnlab's metadata, or for a foreign file `input_size`, `mean`, `std`.

    Given values override the file's; `classes` defaults to the file's, else "0" … "K-1".
    """

    def __init__(self, path: str | Path, input_size=None, mean=None, std=None, threads: int | None = None) -> None:
        from cnnlab.deploy.export import parse_input_size, parse_props

        self.path = Path(path)
        self.session = open_session(path, threads)
        props = dict(self.session.get_modelmeta().custom_metadata_map)
        mean, std = _floats(mean, "mean"), _floats(std, "std")
        if "cnnlab" in props or input_size is None or mean is None or std is None:
            self.meta = parse_props(path, props)
        else:
            self.meta = {"classes": None, "tta": False, "source_run": None}
        if input_size is not None:
            self.meta["input_size"] = parse_input_size(input_size)
        c = self.meta["input_size"][0]
        for key, value in (("mean", mean), ("std", std)):
            if value is not None:
                self.meta[key] = value * c if len(value) == 1 else value
            if len(self.meta[key]) != c:
                raise ValueError(f"--{key} needs {c} value(s) for {c}-channel input, got {self.meta[key]}")
        self.meta.setdefault("mode", "L" if c == 1 else "RGB")
        self.input_name = self.session.get_inputs()[0].name
        std_ = np.asarray(self.meta["std"], np.float32).reshape(1, -1, 1, 1)
        self._scale = 1.0 / (255.0 * std_)
        self._shift = -np.asarray(self.meta["mean"], np.float32).reshape(1, -1, 1, 1) / std_

    @property
    def classes(self) -> list[str] | None:
        return self.meta.get("classes")

    def normalize(self, images: np.ndarray | torch.Tensor) -> np.ndarray:
        """uint8 (N, C, H, W) → the float32 model input, as `cnnlab.data.transforms.Normalize` computes it."""
        x = images.numpy() if isinstance(images, torch.Tensor) else images
        return (x.astype(np.float32) * self._scale + self._shift).astype(np.float32)

    def run(self, x: np.ndarray) -> np.ndarray:
        """Logits of an already normalised float32 batch."""
        return self.session.run(None, {self.input_name: x})[0]

    def logits(self, images, batch_size: int = EVAL_BATCH, tta: bool | None = None) -> torch.Tensor:
        """float32 logits (N, K) of uint8 images (N, C, H, W), flip TTA as the file records unless `tta` is given."""
        tta = self.meta.get("tta", False) if tta is None else tta
        outs = []
        for start in range(0, len(images), batch_size):
            x = self.normalize(images[start : start + batch_size])
            out = self.run(x)
            if tta:
                out = (out + self.run(np.ascontiguousarray(x[..., ::-1]))) / 2
            outs.append(torch.from_numpy(np.asarray(out, np.float32)))
        return torch.cat(outs) if outs else torch.zeros(0, 0)


def evaluate_onnx(model: OnnxClassifier, data: ImageSet, tta: bool | None = None) -> dict:
    """The report of `evaluate.evaluate_model` for an ONNX classifier on a labelled set."""
    classes = model.classes or data.classes
    check_compatible({"input_size": model.meta["input_size"], "classes": classes}, data.image_shape, len(data.classes))
    return metrics_from_logits(model.logits(data.images, tta=tta), data.labels, classes)


def predict_onnx_files(model: OnnxClassifier, files: list[str | Path], top: int = 3) -> list[dict]:
    """For each file: the `top` classes with probabilities and the conversion notes — `predict.predict_files`'s form."""
    images, notes = [], []
    for f in files:
        x, n = load_model_input(f, model.meta["input_size"])
        images.append(x)
        notes.append(n)
    probs = model.logits(torch.stack(images).numpy()).softmax(1)
    classes = model.classes or [str(i) for i in range(probs.shape[1])]
    values, indices = probs.topk(min(top, probs.shape[1]), dim=1)
    return [
        {
            "file": str(f),
            "top": [
                {"class": classes[i], "index": int(i), "probability": float(p)}
                for p, i in zip(vals.tolist(), idx.tolist(), strict=True)
            ],
            "notes": n,
        }
        for f, vals, idx, n in zip(files, values, indices, notes, strict=True)
    ]
