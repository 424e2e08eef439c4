"""A trained model → a self-contained ONNX file: BatchNorm folded, a dynamic batch axis, and in its metadata props
everything a stranger needs to use it without cnnlab (classes, input size and mode, mean / std, source run).

The file's input is `input`: float32 (N, C, H, W), pixels ÷255 then (x − mean) / std per channel; its output is
`logits` (N, classes). `read_onnx_meta` reads the metadata back; the standalone example examples/onnx_predict.py
reads the same props through onnxruntime alone.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from cnnlab.layers.fold_bn import fold_batchnorm
from cnnlab.models import main_output

ONNX_FORMAT = "cnnlab.onnx/1"
INPUT_NAME, OUTPUT_NAME = "input", "logits"
PREPROCESS = "image in input_mode, resized to H×W (bilinear); float32 NCHW; x/255, then (x - mean)/std per channel"


def _require_onnx():
    try:
        import onnx
    except ImportError:
        raise ValueError("ONNX export needs the deploy extra: pip install 'cnnlab[deploy]'") from None
    return onnx


class _Logits(nn.Module):
    """The model's main logits only (GoogLeNet's auxiliary heads are training-time outputs)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return main_output(self.net(x))


def parse_input_size(text: str | Sequence[int]) -> list[int]:
    """'1,28,28' or '3x32x32' (C,H,W) → [C, H, W]."""
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
    return size


def onnx_metadata(meta: dict, source: str | None = None, **extra) -> dict[str, str]:
    """The metadata props (strings): one key per fact a stranger needs, and `cnnlab` with the whole record as JSON."""
    c = meta["input_size"][0]
    record = {
        "format": ONNX_FORMAT,
        **{k: meta.get(k) for k in ("model", "model_args", "classes", "input_size", "mean", "std", "dataset", "tta")},
        "mode": meta.get("mode") or ("L" if c == 1 else "RGB"),
        "trained_precision": meta.get("precision"),
        "metrics": meta.get("metrics"),
        "source_run": source,
        "bn_folded": True,
        "input_name": INPUT_NAME,
        "output_name": OUTPUT_NAME,
        **extra,
    }
    props = {
        "cnnlab": json.dumps(record),
        "classes": json.dumps(record["classes"]),
        "input_size": json.dumps(record["input_size"]),
        "input_mode": record["mode"],
        "mean": json.dumps(record["mean"]),
        "std": json.dumps(record["std"]),
        "tta": "flip" if record["tta"] else "none",
        "preprocess": PREPROCESS,
        "source_run": str(source or ""),
    }
    if record.get("dataset"):
        props["dataset"] = str(record["dataset"])
    return props


def set_metadata(model_proto, props: dict[str, str]) -> None:
    """Replace the model's metadata props by `props` (quantization tools do not reliably keep them)."""
    del model_proto.metadata_props[:]
    for k, v in props.items():
        entry = model_proto.metadata_props.add()
        entry.key, entry.value = k, v


def _failing_module(error: BaseException, model: nn.Module) -> str | None:
    """The innermost submodule of `model` whose forward was running where the export failed (from the tracebacks)."""
    names = {id(m): name for name, m in model.named_modules()}
    found, seen = None, set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        tb = error.__traceback__
        while tb is not None:
            owner = tb.tb_frame.f_locals.get("self")
            if isinstance(owner, nn.Module) and id(owner) in names:
                name = names[id(owner)]
                found = f"'{name}' ({type(owner).__name__})" if name else f"the model itself ({type(owner).__name__})"
            tb = tb.tb_next
        error = error.__cause__ or error.__context__
    return found


def _root_message(error: BaseException) -> str:
    while (error.__cause__ or error.__context__) is not None:
        error = error.__cause__ or error.__context__
    first = next((line for line in str(error).splitlines() if line.strip()), "")
    return f"{type(error).__name__}: {first[:200]}"


def to_onnx_proto(model: nn.Module, input_size: Sequence[int], opset: int | None = None):
    """Trace `model` (BN folded, eval mode, on a copy) into an ONNX ModelProto with a dynamic batch axis.

    torch's dynamo-based exporter (torch.export + onnxscript) is used, not the TorchScript one: the latter is
    deprecated since torch 2.9 and cannot export the adaptive average pooling of VGG and AlexNet at small inputs
    ("output size that are not factor of input size"), while the dynamo exporter handles every registered family.
    """
    _require_onnx()
    net = _Logits(fold_batchnorm(model).cpu().float()).eval()
    example = torch.zeros(2, *input_size)  # batch 2: torch.export specializes a batch of 1 to a constant
    out, onnx_log = io.StringIO(), logging.getLogger("torch.onnx")
    level = onnx_log.level
    onnx_log.setLevel(logging.ERROR)  # no "torchvision is not installed" warnings
    try:
        with contextlib.redirect_stdout(out), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                net,
                (example,),
                None,
                dynamo=True,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                opset_version=opset,
                dynamic_shapes=({0: torch.export.Dim("batch")},),
                verbose=False,
            )
    except ImportError as e:
        raise ValueError(f"ONNX export needs onnxscript ({e}); pip install 'cnnlab[deploy]'") from None
    except Exception as e:
        where = _failing_module(e, net.net)
        where = f"module {where}" if where else "the model"
        raise ValueError(f"the ONNX exporter cannot trace {where}: {_root_message(e)}") from None
    finally:
        onnx_log.setLevel(level)
    return program.model_proto


def export_onnx(
    model: nn.Module, meta: dict, path: str | Path, source: str | None = None, opset: int | None = None, **extra
) -> Path:
    """Write `model` as a self-contained ONNX file (weights inside) with cnnlab's metadata; checked by onnx."""
    _require_onnx()
    if not meta.get("input_size"):
        raise ValueError("the model's input size is unknown; give it with --input C,H,W (e.g. --input 1,28,28)")
    proto = to_onnx_proto(model, meta["input_size"], opset)
    return save_onnx(proto, path, onnx_metadata(meta, source, **extra))


def save_onnx(proto, path: str | Path, props: dict[str, str]) -> Path:
    onnx = _require_onnx()
    set_metadata(proto, props)
    proto.doc_string = f"cnnlab classifier; input '{INPUT_NAME}': {PREPROCESS}"
    onnx.checker.check_model(proto, full_check=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(proto, str(path), save_as_external_data=False)
    return path


def read_onnx_meta(path: str | Path) -> dict:
    """cnnlab's metadata record of an exported file; one clear ValueError for a non-ONNX file or a foreign one."""
    return parse_props(path, onnx_props(path))


def onnx_props(path: str | Path) -> dict[str, str]:
    """The metadata props of an ONNX file, read through onnxruntime (a non-ONNX file → ValueError, one line)."""
    from cnnlab.deploy.onnx_runtime import open_session

    return dict(open_session(path).get_modelmeta().custom_metadata_map)


def parse_props(path: str | Path, props: dict[str, str]) -> dict:
    raw = props.get("cnnlab")
    if raw is None:
        raise ValueError(
            f"{path}: an ONNX file without cnnlab metadata; to run it as a classifier give "
            "--input C,H,W --mean M[,M,M] --std S[,S,S]"
        )
    try:
        record = json.loads(raw)
    except ValueError:
        raise ValueError(f"{path}: its cnnlab metadata is not valid JSON") from None
    if record.get("format") != ONNX_FORMAT:
        raise ValueError(f"{path}: cnnlab metadata of format {record.get('format')!r}; this cnnlab reads {ONNX_FORMAT}")
    return record
