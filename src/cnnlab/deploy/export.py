"""A trained model → a self-contained ONNX file: BatchNorm folded, a dynamic batch axis, and in its metadata props
everything a stranger needs to use it without cnnlab (classes, input size and mode, mean / std, source run).

The file's input is `input`: float32 (N, C, H, W), pixels ÷255 then (x − mean) / std per channel; its output is
`logits` (N, classes) for a classifier, else `outputs`, the task's raw outputs (the `outputs` prop says what the
columns mean). The props are `RunMeta.onnx_props`; `RunMeta.from_onnx_props` reads them back, and the
standalone example examples/onnx_predict.py reads the same props through onnxruntime alone.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

from cnnlab.io import atomic_write
from cnnlab.io.meta import ONNX_INPUT, ONNX_OUTPUT, PREPROCESS, ExportInfo, RunMeta
from cnnlab.layers.fold_bn import fold_batchnorm
from cnnlab.models import main_output

MIN_OPSET = 7  # the oldest opset ONNX's version converter reaches (with a classifier's ops)


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


def to_onnx_proto(
    model: nn.Module, input_size: Sequence[int], opset: int | None = None, output_name: str = ONNX_OUTPUT
):
    """Trace `model` (BN folded, eval mode, on a copy) into an ONNX ModelProto with a dynamic batch axis.

    torch's dynamo-based exporter (torch.export + onnxscript) is used, not the TorchScript one: the latter is
    deprecated since torch 2.9 and cannot export the adaptive average pooling of VGG and AlexNet at small inputs
    ("output size that are not factor of input size"), while the dynamo exporter handles every registered family.
    """
    onnx = _require_onnx()
    newest = onnx.defs.onnx_opset_version()
    if opset is not None and not MIN_OPSET <= opset <= newest:
        raise ValueError(f"--opset {opset}: the ONNX exporter writes opsets {MIN_OPSET}–{newest}")
    net = _Logits(fold_batchnorm(model).cpu().float()).eval()
    example = torch.zeros(2, *input_size)  # batch 2: torch.export specializes a batch of 1 to a constant
    out = io.StringIO()
    # no "torchvision is not installed" warnings, and no converter tracebacks: a failed conversion is checked below
    logs = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript")]
    levels = [log.level for log in logs]
    for log in logs:
        log.setLevel(logging.CRITICAL)
    try:
        with contextlib.redirect_stdout(out), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                net,
                (example,),
                None,
                dynamo=True,
                input_names=[ONNX_INPUT],
                output_names=[output_name],
                opset_version=None,  # the exporter's own (20 with torch 2.13); a requested one: converted to below
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
        for log, level in zip(logs, levels, strict=True):
            log.setLevel(level)
    proto = global_means_as_pools(program.model_proto)
    written = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None or opset == written:
        return proto
    try:
        from onnx import version_converter

        converted = version_converter.convert_version(proto, opset)
        onnx.checker.check_model(converted)
    except Exception:
        raise ValueError(
            f"--opset {opset}: the exporter could not convert this model to opset {opset} (it exports opset "
            f"{written}); give another --opset, or leave it out (the exporter's own, {written}, always works)"
        ) from None
    return converted


def _axes_of(node, constants: dict) -> list[int] | None:
    """A ReduceMean's axes (opset 18: its second input, an initializer or Constant), or None where not constant."""
    from onnx import numpy_helper

    if len(node.input) > 1 and node.input[1] in constants:
        return [int(v) for v in numpy_helper.to_array(constants[node.input[1]]).ravel()]
    return None


def global_means_as_pools(proto):
    """`proto` with each mean over all spatial axes of a map of known size (global average pooling, which
    torch.export writes as ReduceMean) written as an AveragePool whose kernel is the whole map — the same numbers
    (summed in another order), a node engines run better: OpenVINO's CPU plugin spent 19 % of the fast recipe's
    batch-256 forward pass in its ReduceMean (705 µs of 3.6 ms, bf16, AMX) and runs the AveragePool in 33 µs.
    A mean keeping no dims becomes the pool then a Flatten. Means over other axes, or of maps whose size the
    graph does not fix, stay."""
    onnx = _require_onnx()
    from onnx import helper

    inferred = onnx.shape_inference.infer_shapes(proto).graph  # read for the sizes; the file keeps its own
    g = proto.graph
    shapes = {
        v.name: [d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim]
        for v in [*inferred.value_info, *inferred.input]
    }
    constants = {t.name: t for t in g.initializer}
    constants |= {
        n.output[0]: helper.get_attribute_value(n.attribute[0])
        for n in g.node
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"
    }
    nodes, freed = [], set()  # the graph's nodes after the rewrite; the axes inputs the rewritten means read
    for n in g.node:
        shape = shapes.get(n.input[0]) if n.op_type == "ReduceMean" else None
        axes = _axes_of(n, constants) if shape and len(shape) > 2 else None
        if axes is None or sorted(a % len(shape) for a in axes) != list(range(2, len(shape))) or None in shape[2:]:
            nodes.append(n)
            continue
        keep = next((helper.get_attribute_value(a) for a in n.attribute if a.name == "keepdims"), 1)
        freed.update(n.input[1:])
        pooled = n.output[0] if keep else f"{n.output[0]}_pooled"
        nodes.append(helper.make_node("AveragePool", [n.input[0]], [pooled], name=n.name, kernel_shape=shape[2:]))
        if not keep:
            nodes.append(helper.make_node("Flatten", [pooled], [n.output[0]], name=f"{n.name}_flatten", axis=1))
    if len(nodes) == len(g.node) and all(a is b for a, b in zip(nodes, g.node, strict=True)):
        return proto
    freed -= {i for n in nodes for i in n.input} | {o.name for o in g.output}  # still read elsewhere: kept
    del g.node[:]
    g.node.extend(n for n in nodes if not (n.op_type == "Constant" and n.output[0] in freed))
    for t in [t for t in g.initializer if t.name in freed]:
        g.initializer.remove(t)
    return proto


def relus_after_pools(proto):
    """`proto` with each ReLU whose output only a max pool reads moved after that pool — the same numbers (max pooling
    commutes with ReLU, as in the Trainer's forward pass, `cnnlab.layers.pool_first`; pads count as −∞ either way),
    on a quarter of the values. For OpenVINO, not for the exported file: OpenVINO then merges the batch norm after
    the pool into the ReLU, and ran the fast recipe's model at batch 256 (bf16, AMX) in 3.09–3.11 ms against
    3.28–3.35 ms, while ONNX Runtime, which merges a ReLU into the convolution before it, ran it 1–6 % slower."""
    g = proto.graph
    readers: dict[str, list] = {}
    for n in g.node:
        for name in n.input:
            readers.setdefault(name, []).append(n)
    outputs = {o.name for o in g.output}
    nodes = list(g.node)
    at = {id(n): i for i, n in enumerate(nodes)}
    moved = set()
    for relu in [n for n in nodes if n.op_type == "Relu"]:
        read = readers.get(relu.output[0], [])
        pool = read[0] if len(read) == 1 else None
        if pool is None or pool.op_type != "MaxPool" or len(pool.output) != 1 or relu.output[0] in outputs:
            continue
        moved.add(relu.output[0])
        pooled = f"{relu.output[0]}_pooled_first"
        pool.input[0], relu.input[0] = relu.input[0], pooled
        relu.output[0], pool.output[0] = pool.output[0], pooled
        nodes[at[id(relu)]], nodes[at[id(pool)]] = pool, relu  # the pool where the ReLU ran, and the ReLU after it
        at[id(relu)], at[id(pool)] = at[id(pool)], at[id(relu)]
    if moved:
        del g.node[:]
        g.node.extend(nodes)
        for v in [v for v in g.value_info if v.name in moved]:  # names no node writes any more
            g.value_info.remove(v)
    return proto


def export_onnx(
    model: nn.Module,
    meta: RunMeta,
    path: str | Path,
    source: str | None = None,
    opset: int | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Write `model` as a self-contained ONNX file (weights inside) with its metadata; checked by onnx.
    log: gets a line as each step starts (tracing, checking and writing)."""
    _require_onnx()
    if log is not None:
        log(f"export: tracing {meta.model} with torch.export (BatchNorm folded) …")
    proto = to_onnx_proto(model, meta.input_size, opset, meta.make_task().onnx_output)
    if log is not None:
        log("export: checking the ONNX graph and writing it …")
    return save_onnx(proto, path, meta.onnx_props(ExportInfo(source_run=source)))


def save_onnx(proto, path: str | Path, props: dict[str, str]) -> Path:
    """Check `proto`, set its metadata props and write it atomically (an interrupted write keeps the old file)."""
    onnx = _require_onnx()
    set_metadata(proto, props)
    proto.doc_string = f"cnnlab classifier; input '{ONNX_INPUT}': {PREPROCESS}"
    onnx.checker.check_model(proto, full_check=True)
    return atomic_write(Path(path), lambda tmp: onnx.save_model(proto, tmp, save_as_external_data=False))
