"""Open a trained classifier on the engine its file calls for, behind the one `cnnlab.infer.Classifier` protocol:
a run folder or model file runs as the torch model (cnnlab's inference path), an .onnx file through ONNX Runtime
or, with `engine="openvino"`, OpenVINO (`cnnlab[openvino]`). evaluate, predict, bench and serve take what this returns."""

from __future__ import annotations

from pathlib import Path

from cnnlab.deploy.onnx_runtime import OnnxClassifier, is_onnx_path
from cnnlab.deploy.openvino_runtime import OpenVinoClassifier
from cnnlab.infer import Classifier, TorchClassifier
from cnnlab.io import load_model

ONNX_ENGINES = {"onnxruntime": OnnxClassifier, "openvino": OpenVinoClassifier}  # what runs an .onnx file


def open_classifier(
    path: str | Path,
    device: str = "auto",
    precision: str | None = None,
    tta: bool | None = None,
    threads: int | None = None,
    input_size: str | None = None,
    mean: str | None = None,
    std: str | None = None,
    engine: str = "onnxruntime",
) -> Classifier:
    """The classifier in `path`: a run folder or .safetensors model file (torch, on `device`, in `precision`,
    default the run's), or an .onnx file (ONNX Runtime on the CPU with `threads`; `input_size`, `mean`, `std`
    describe a foreign file; `engine` "onnxruntime" or "openvino"). tta: flip test-time augmentation on / off
    (default: as the file records)."""
    if engine not in ONNX_ENGINES:
        raise ValueError(f"--engine {engine}: an .onnx file runs with {' or '.join(ONNX_ENGINES)}")
    if is_onnx_path(path):
        if device not in ("auto", "cpu") or precision not in (None, "auto", "fp32"):
            raise ValueError(
                f"{path}: an .onnx file runs in its own precision on the CPU (ONNX Runtime); "
                "--device and --precision apply to a run folder or model file"
            )
        return ONNX_ENGINES[engine](path, input_size, mean, std, threads=threads, tta=tta)
    if engine != "onnxruntime":
        raise ValueError(f"--engine {engine}: runs an .onnx file (export the run first); a run folder runs in torch")
    if input_size is not None or mean is not None or std is not None:
        raise ValueError("--input, --mean and --std describe a foreign .onnx file; a cnnlab model file records them")
    model, meta = load_model(path)
    return TorchClassifier(model, meta, device, precision, tta)
