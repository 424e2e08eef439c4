"""An ONNX classifier run by ONNX Runtime behind the `cnnlab.infer.Classifier` protocol: uint8 images → logits.

The numbers are those of the torch model: the same normalisation and flip TTA (from the file's `RunMeta`), so
`evaluate`, `predict`, `bench` and `serve` take an .onnx file wherever they take a run folder.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from cnnlab.infer import EVAL_BATCH, Progress
from cnnlab.io.meta import MAX_CHANNELS, MAX_SIDE, RunMeta


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


def parse_input_size(text: str | Sequence[int]) -> tuple[int, int, int]:
    """'1,28,28' or '3x32x32' (C,H,W) → (C, H, W)."""
    if isinstance(text, str):
        parts = text.replace("x", ",").replace("×", ",").split(",")
        try:
            size = [int(p) for p in parts if p.strip()]
        except ValueError:
            size = []
    else:
        size = [int(v) for v in text]
    if len(size) != 3 or min(size) < 1:
        raise ValueError(f"--input wants C,H,W (e.g. 1,28,28), got '{text}'")
    c, h, w = size
    if c > MAX_CHANNELS or h > MAX_SIDE or w > MAX_SIDE:
        raise ValueError(f"--input {text}: C must be 1–{MAX_CHANNELS} and H, W 1–{MAX_SIDE} pixels")
    return tuple(size)  # type: ignore[return-value]


def _floats(text: str | Sequence[float] | None, what: str, channels: int) -> list[float] | None:
    """--mean / --std as numbers, one per channel (a single value is used for every channel)."""
    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",") if v.strip()] if isinstance(text, str) else [float(v) for v in text]
    except ValueError:
        raise ValueError(f"--{what} wants numbers separated by commas, got '{text}'") from None
    values = values * channels if len(values) == 1 else values
    if len(values) != channels:
        raise ValueError(f"--{what} needs {channels} value(s) for {channels}-channel input, got {values}")
    return values


class OnnxClassifier:
    """An ONNX classifier and how to feed it: cnnlab's metadata, or for a foreign file `input_size`, `mean`, `std`
    (these override the file's when given). A file whose graph does not fit its metadata, or that is not an image
    classifier (float32 N×C×H×W in, N×K logits out), is refused in one line."""

    def __init__(
        self,
        path: str | Path,
        input_size=None,
        mean=None,
        std=None,
        threads: int | None = None,
        tta: bool | None = None,
    ) -> None:
        self.path = Path(path)
        self.session = open_session(path, threads)
        self.input_name = self.session.get_inputs()[0].name
        props = dict(self.session.get_modelmeta().custom_metadata_map)
        size = parse_input_size(input_size) if input_size is not None else None
        if "cnnlab" in props or size is None or mean is None or std is None:
            meta = RunMeta.from_onnx_props(props, self.path)
            size = size or meta.input_size
            changes = {"input_size": size}
            for key, value in (("mean", mean), ("std", std)):
                given = _floats(value, key, size[0])
                changes[key] = tuple(given) if given is not None else getattr(meta, key)
            meta = RunMeta.from_dict({**meta.to_dict(), **changes}, self.path)
        else:
            c = size[0]
            meta = RunMeta.foreign(
                self.path.name,
                size,
                _floats(mean, "mean", c),
                _floats(std, "std", c),
                self._output_width(size),
                self.path,
            )
        self.meta = meta
        self.task = meta.make_task()
        self.precision = meta.export.precision if meta.export else "fp32"  # of the graph: fp32 or int8
        self.tta = meta.tta if tta is None else tta
        self._check_graph()
        std_ = np.asarray(meta.std, np.float32).reshape(1, -1, 1, 1)
        self._scale = 1.0 / (255.0 * std_)
        self._shift = -np.asarray(meta.mean, np.float32).reshape(1, -1, 1, 1) / std_

    def _output_width(self, size: Sequence[int]) -> int:
        """K of the (N, K) output: from the graph when static, else from one zero image."""
        self._check_io_kinds()
        width = self.session.get_outputs()[0].shape[1]
        if isinstance(width, int):
            return width
        return int(self.run(np.zeros((1, *size), np.float32)).shape[1])

    def _check_io_kinds(self, rank: int = 2) -> None:
        """Float32 N×C×H×W in, and an output of `rank` (2: N×K logits; a task's raw outputs may have more)."""
        inp, out = self.session.get_inputs()[0], self.session.get_outputs()[0]
        if inp.type != "tensor(float)" or len(inp.shape) != 4:
            raise ValueError(
                f"{self.path}: not an image classifier cnnlab can feed (its input '{inp.name}' is "
                f"{inp.type} of rank {len(inp.shape)}; cnnlab feeds float32 N×C×H×W)"
            )
        if len(out.shape) != rank and rank == 2:
            raise ValueError(
                f"{self.path}: not a classifier (its output '{out.name}' has rank {len(out.shape)}, not N×K logits)"
            )
        if len(out.shape) != rank:
            raise ValueError(f"{self.path}: its output '{out.name}' has rank {len(out.shape)}, its task's {rank}")

    def _check_graph(self) -> None:
        """The graph's static input dimensions and output shape agree with the metadata."""
        want_out = self.task.output_shape
        self._check_io_kinds(1 + len(want_out))
        want = self.meta.input_size
        got = self.session.get_inputs()[0].shape[1:]
        for name, g, w in zip(("channels", "height", "width"), got, want, strict=True):
            if isinstance(g, int) and g != w:
                raise ValueError(f"{self.path}: its graph takes {name} {g}, its metadata says {w}")
        got_out = self.session.get_outputs()[0].shape[1:]
        if any(isinstance(g, int) and g != w for g, w in zip(got_out, want_out, strict=True)):
            if self.task.name == "classify":
                k = got_out[0]
                raise ValueError(
                    f"{self.path}: its graph outputs {k} classes, its metadata names {self.meta.num_classes}"
                )
            raise ValueError(
                f"{self.path}: its graph outputs {list(got_out)} per image, its {self.task.name} task {list(want_out)}"
            )

    def normalize(self, images: np.ndarray | torch.Tensor) -> np.ndarray:
        """uint8 (N, C, H, W) → the float32 model input, as `cnnlab.data.transforms.Normalize` computes it."""
        x = images.numpy() if isinstance(images, torch.Tensor) else images
        return (x.astype(np.float32) * self._scale + self._shift).astype(np.float32)

    def run(self, x: np.ndarray) -> np.ndarray:
        """Logits of an already normalised float32 batch."""
        return self.session.run(None, {self.input_name: x})[0]

    def logits(
        self, images, tta: bool | None = None, log: Callable[[str], None] | None = None, batch_size: int = EVAL_BATCH
    ) -> torch.Tensor:
        """float32 logits (N, K) of uint8 images (N, C, H, W), with flip TTA as the classifier was opened with
        (default: as the file records) unless `tta` is given."""
        tta = self.tta if tta is None else tta
        progress = Progress(len(images), log)
        outs, done = [], 0
        for start in range(0, len(images), batch_size):
            x = self.normalize(images[start : start + batch_size])
            out = self.run(x)
            out = torch.from_numpy(np.asarray(out, np.float32))
            if tta:  # the mirrored image's outputs, mirrored back by the task (a box's centre moves)
                flipped = torch.from_numpy(np.asarray(self.run(np.ascontiguousarray(x[..., ::-1])), np.float32))
                out = (out + self.task.flip_back(flipped)) / 2
            outs.append(out)
            done += len(x)
            progress(done)
        return torch.cat(outs) if outs else torch.zeros(0, *self.task.output_shape)
