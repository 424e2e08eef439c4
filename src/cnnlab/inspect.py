"""Per-layer summary of a model: the tables the lectures compute by hand.

One forward pass of a zero image (batch 1, eval mode) with hooks on every module gives, per layer call:

- **output shape** C×H×W (or the feature count after the flatten);
- **parameters** of the module (counted at its first call only, so a module run twice is not counted twice);
- **MACs** (multiply-accumulates), the convention of the published figures (ResNet-50 ≈ 4.1 G at 224×224):
  conv k_h·k_w·(C_in/groups)·C_out·H_out·W_out, linear in·out; bias adds, batch norm, pooling and activations
  count 0;
- **receptive field** r and **jump** j (input pixels between neighbouring outputs), along the height, with the
  standard recurrence from r = j = 1 at the input: a conv or pool with kernel k, stride s and dilation d gives
  j_out = j_in·s and r_out = r_in + (k − 1)·d·j_in. Element-wise layers keep (r, j). Where branches meet (a
  residual add, an Inception concatenation) the result covers the union of its inputs' fields, with the largest
  j: the field of the longest path, the usual figure for ResNet-50 (483). The same trace (`tracing_fields`) also
  knows where each field starts (padding), per axis, which cnnlab.explain uses to place crops and Grad-CAM cells.
  A map made larger (a transposed conv, a resize: a U-Net's way up) divides the jump by its scale s, and each
  output cell sees the input cells it is computed from (`_upsample_field`), so a U-Net's output, at full size
  again, has jump 1 and the field of its deepest path. After a flatten, a fully connected layer or a global
  pooling every output sees the whole image and the table shows '—' (also for ops whose geometry is unknown).

Totals: parameters (trainable / frozen, and those of modules the pass never ran, such as auxiliary heads in
eval mode), MACs, and activation memory — the bytes of every distinct tensor a module returns for one sample in
fp32 (an in-place ReLU or a flatten view shares its input's memory and is counted once; the input is not counted).

`depth` collapses nested modules: a module at that nesting depth (``layer1`` is depth 1, ``layer1.0`` depth 2)
becomes one row with the sum of its parameters and MACs and the shape and field of its output — an Inception or a
residual block on one line, as in the GoogLeNet paper's table.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from cnnlab.models import create_model
from cnnlab.models.hooks import Call, record, tensors
from cnnlab.models.notation import to_notation

_WINDOWED = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, nn.Conv1d, nn.MaxPool1d, nn.AvgPool1d)
_ADAPTIVE = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.AdaptiveAvgPool1d, nn.AdaptiveMaxPool1d)
_1D = (nn.Conv1d, nn.MaxPool1d, nn.AvgPool1d)
_UPSAMPLING = (nn.ConvTranspose2d, nn.Upsample)  # a map made larger: the jump shrinks
_TAPS = {"nearest": 1, "nearest-exact": 1, "bilinear": 2, "bicubic": 4}  # input cells a resized cell reads, per axis
# a row, in this order; kernel … ceil_mode only for convs and pools
_ROW_KEYS = (
    "name",
    "type",
    "depth",
    "kernel",
    "stride",
    "padding",
    "dilation",
    "ceil_mode",
    "output",
    "params",
    "macs",
    "rf",
    "jump",
)


def _pair(value) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)  # type: ignore[return-value]


@dataclass(frozen=True)
class Field:
    """Receptive field of the cells of a feature map, per axis (height, width), from the kernel/stride/padding
    recurrence: along an axis, cell i sees input pixels start + i·jump … start + i·jump + size − 1. `start` is
    negative where padding makes the field reach past the image; `box` clips it."""

    start: tuple[int, int]
    size: tuple[int, int]
    jump: tuple[int, int]

    def box(self, position: tuple[int, int], image: tuple[int, int]) -> tuple[int, int, int, int]:
        """Input pixels (top, bottom, left, right; half-open, clipped to the image of `image` H×W) of cell (y, x)."""
        (t, b), (l, r) = (self.span(a, position[a]) for a in (0, 1))
        return max(t, 0), min(b, image[0]), max(l, 0), min(r, image[1])

    def span(self, axis: int, i: int) -> tuple[int, int]:
        """Unclipped input pixels [first, last + 1) that cell i sees along `axis` (0: height, 1: width)."""
        first = self.start[axis] + i * self.jump[axis]
        return first, first + self.size[axis]

    def centre(self, axis: int) -> float:
        """Input coordinate of the centre of cell 0's field along `axis` (cell i: centre + i·jump)."""
        return self.start[axis] + (self.size[axis] - 1) / 2


PIXEL = Field((0, 0), (1, 1), (1, 1))  # an input pixel sees itself


class _FieldTracer(TorchFunctionMode):
    """Carries the receptive field of every tensor to the tensors torch computes from it.

    `fields` maps id(tensor) → (tensor, Field or None); holding the tensor keeps its id from being reused.
    Module hooks overwrite the result of convs and pools with the exact recurrence.
    """

    def __init__(self, fields: dict) -> None:
        super().__init__()
        self.fields = fields

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        known = [self.fields[id(t)] for t in tensors((args, kwargs)) if id(t) in self.fields]
        if known:
            for t in tensors(out):
                self.fields[id(t)] = (t, _merge(known, t))
        return out


def _merge(inputs: list[tuple], out: torch.Tensor) -> Field | None:
    """Field of an op's output: the union of its inputs' with the same H×W (for branches that meet, the field of
    the longest path); None when flattened or resized."""
    if out.dim() not in (3, 4):  # (B, C, H, W), or (B, C, L) for a signal (its field on both axes of a Field)
        return None
    same = [f for t, f in inputs if f is not None and t.dim() == out.dim() and t.shape[2:] == out.shape[2:]]
    if not same:
        return None
    start = tuple(min(f.start[a] for f in same) for a in (0, 1))
    end = tuple(max(f.start[a] + f.size[a] for f in same) for a in (0, 1))
    return Field(
        start,
        tuple(e - s for s, e in zip(start, end, strict=True)),  # type: ignore[arg-type]
        tuple(max(f.jump[a] for f in same) for a in (0, 1)),
    )  # type: ignore[arg-type]


def _window_field(m: nn.Module, field: Field | None, x: torch.Tensor, out: torch.Tensor) -> Field | None:
    """Field after a conv / pool / adaptive pool module, from its input's: r_out = r_in + (k − 1)·d·j_in,
    j_out = j_in·s, and the first cell starts `padding` input cells (of j_in pixels) before the first input cell."""
    if field is None or out.dim() not in (3, 4):
        return None
    if isinstance(m, _ADAPTIVE):  # a no-op at this size (VGG's 7×7 pool at 224), else global or unknown
        return field if out.shape[2:] == x.shape[2:] else None
    g = _geometry(m)
    k, s, p, d = ((g[key] * 2)[:2] for key in ("kernel", "stride", "padding", "dilation"))  # 1-D: both axes
    return Field(
        tuple(field.start[a] - p[a] * field.jump[a] for a in (0, 1)),  # type: ignore[arg-type]
        tuple(field.size[a] + (k[a] - 1) * d[a] * field.jump[a] for a in (0, 1)),  # type: ignore[arg-type]
        tuple(field.jump[a] * s[a] for a in (0, 1)),
    )  # type: ignore[arg-type]


def _upsample_field(m: nn.Module, field: Field | None, x: torch.Tensor, out: torch.Tensor) -> Field | None:
    """Field after a transposed conv or a resize that makes the map s times larger: j_out = j_in / s, and each output
    cell sees the n input cells it is computed from along an axis, r_out = r_in + (n − 1)·j_in — n = ⌈k / s⌉ for a
    transposed conv (one for U-Net's 2×2/2), 2 for a bilinear resize (1 nearest, 4 bicubic); cell 0 reads input
    cell ⌈(p − (k − 1)·d) / s⌉ of a transposed conv, cell 0 of a resize."""
    if field is None or out.dim() != 4 or x.dim() != 4:
        return None
    scale = [o / i for o, i in zip(out.shape[2:], x.shape[2:], strict=True)]
    if isinstance(m, nn.ConvTranspose2d):
        k, s, p, d = (_pair(v) for v in (m.kernel_size, m.stride, m.padding, m.dilation))
        taps = [math.ceil(k[a] / s[a]) for a in (0, 1)]
        first = [math.ceil((p[a] - (k[a] - 1) * d[a]) / s[a]) for a in (0, 1)]
    elif m.mode in _TAPS:
        taps, first = [_TAPS[m.mode]] * 2, [0, 0]
    else:
        return None
    jump = [field.jump[a] / scale[a] for a in (0, 1)]
    return Field(
        tuple(field.start[a] + first[a] * field.jump[a] for a in (0, 1)),  # type: ignore[arg-type]
        tuple(field.size[a] + (taps[a] - 1) * field.jump[a] for a in (0, 1)),  # type: ignore[arg-type]
        tuple(int(j) if j == int(j) else j for j in jump),  # type: ignore[arg-type]
    )


class FieldTrace:
    """What `tracing_fields` yields: `field(t)` for any tensor computed from its input inside the block, and the
    module calls it recorded (`calls`, with `fields[call.index]` the field of each call's output as it returned)."""

    def __init__(self) -> None:
        self.tensors: dict = {}
        self.fields: dict[int, Field | None] = {}
        self.calls: list[Call] = []

    def field(self, t: torch.Tensor) -> Field | None:
        """Receptive field of the cells of `t` (N, C, H, W); None when unknown or when each cell sees everything."""
        return self.tensors.get(id(t), (None, None))[1]


@contextmanager
def tracing_fields(model: nn.Module, x: torch.Tensor) -> Iterator[FieldTrace]:
    """Receptive fields of the tensors that torch ops compute from `x` (the input, of field 1×1) inside the block.

    Convs and pools (modules) use the exact recurrence (`_window_field`); every other op keeps the union of the
    fields of its inputs of the same H×W (a ReLU, a batch norm, a residual add, an Inception concatenation), and
    one that changes the H×W otherwise (a flatten, a functional pool, an interpolation) gives None.
    """
    trace = FieldTrace()
    trace.tensors[id(x)] = (x, PIXEL)

    def on_call(call: Call) -> None:
        out, ins = call.out, tensors(call.inputs)
        if out is not None and call.leaf and isinstance(call.module, (*_WINDOWED, *_ADAPTIVE)) and ins:
            trace.tensors[id(out)] = (out, _window_field(call.module, trace.field(ins[0]), ins[0], out))
        elif out is not None and call.leaf and isinstance(call.module, _UPSAMPLING) and ins:
            trace.tensors[id(out)] = (out, _upsample_field(call.module, trace.field(ins[0]), ins[0], out))
        trace.fields[call.index] = trace.field(out) if out is not None else None

    with record(model, on_call=on_call) as rec, _FieldTracer(trace.tensors):
        trace.calls = rec.calls
        yield trace


def _macs(m: nn.Module, out: torch.Tensor) -> int:
    if isinstance(m, (nn.Conv1d, nn.Conv2d)):  # weight (C_out, C_in/groups, k_h, k_w), once per output position
        return m.weight.numel() * out[0, 0].numel()
    if isinstance(m, nn.ConvTranspose2d):  # weight (C_in, C_out/groups, k_h, k_w), once per input position
        h, w = (
            (size + 2 * p - d * (k - 1) - op - 1) // s + 1
            for size, p, d, k, op, s in zip(
                out.shape[2:], m.padding, m.dilation, m.kernel_size, m.output_padding, m.stride, strict=True
            )
        )
        return m.weight.numel() * h * w
    if isinstance(m, nn.Linear):  # weight (out, in), once per row of the (flattened) input
        return m.weight.numel() * (out.numel() // out.shape[-1])
    return 0


def _geometry(m: nn.Module) -> dict:
    """Kernel, stride, padding, dilation of a conv, transposed conv or pool (height, width; one number each for a 1-D
    layer); empty for other modules."""
    if not isinstance(m, (*_WINDOWED, nn.ConvTranspose2d)):
        return {}
    pair = (lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v,)) if isinstance(m, _1D) else _pair
    k, d = pair(m.kernel_size), pair(getattr(m, "dilation", 1))
    pad = (
        m.padding
        if not isinstance(m.padding, str)
        else [0 if m.padding == "valid" else d[a] * (k[a] - 1) // 2 for a in range(len(k))]
    )
    return {
        "kernel": list(k),
        "stride": list(pair(m.stride or m.kernel_size)),
        "padding": list(pair(pad)),
        "dilation": list(d),
        "ceil_mode": bool(getattr(m, "ceil_mode", False)),
    }


def summary(model: nn.Module, input_size: tuple[int, int, int], depth: int | None = None) -> dict:
    """Run one zero input of `input_size` (C, H, W) through `model`; returns layer rows and totals.

    `depth`: show modules nested deeper than this as part of their ancestor at that depth (None: every leaf).
    """
    if depth is not None and depth < 1:
        raise ValueError(f"depth must be 1 or more (1 = the model's direct children), got {depth}")
    param = next(model.parameters(), None)
    x = torch.zeros(1, *input_size, device=param.device if param is not None else "cpu")
    was_training = model.training
    model.eval()  # batch 1: batch norm uses its running statistics, dropout is off
    try:
        with torch.no_grad(), tracing_fields(model, x) as trace:
            out = model(x)
    finally:
        model.train(was_training)
    out = tensors(out)[0]
    calls = [c for c in trace.calls if c.out is not None]  # in the order they returned
    by_index = {c.index: c for c in trace.calls}
    macs = dict.fromkeys(by_index, 0)
    for c in calls:  # a leaf's MACs count in its own row and in every block it ran inside
        if c.leaf:
            m, i = _macs(c.module, c.out), c.index
            while i is not None:
                macs[i] += m
                i = by_index[i].parent
    rows, counted = [], set()  # a module's parameters count at its first call only
    for c in calls:
        params = sum(p.numel() for p in c.module.parameters(recurse=not c.leaf)) if c.module not in counted else 0
        counted.add(c.module)
        field = trace.fields[c.index]
        rows.append(
            {
                "name": c.name,
                "type": type(c.module).__name__,
                "depth": c.name.count(".") + 1,
                "leaf": c.leaf,
                **_geometry(c.module),
                "output": list(c.out.shape[1:]),
                "params": params,
                "macs": macs[c.index],
                "rf": field.size[0] if field else None,
                "jump": field.jump[0] if field else None,
                "order": c.index,
                "module": c.module,
            }
        )
    rows.sort(key=lambda r: r["order"])
    shown = [r for r in rows if (r["leaf"] and (depth is None or r["depth"] <= depth)) or r["depth"] == depth]
    ran = {r["module"] for r in rows}
    # distinct output memory: in-place results and views share their input's storage
    storages = {c.out.untyped_storage().data_ptr(): c.out.untyped_storage().nbytes() for c in calls}
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    not_run = sum(
        p.numel() for m in model.modules() if m not in ran and m is not model for p in m.parameters(recurse=False)
    )
    layers = [{k: r[k] for k in _ROW_KEYS if k in r} for r in shown]
    return {
        "input": list(input_size),
        "depth": depth,
        "layers": layers,
        "output": list(out.shape[1:]),
        "params": total,
        "trainable": trainable,
        "frozen": total - trainable,
        "params_not_run": not_run,
        "macs": sum(r["macs"] for r in rows if r["leaf"]),
        "activation_bytes": sum(storages.values()),
        "notation": to_notation(model, tuple(input_size)),
    }


def activation_bytes(
    name: str, model_args: dict, input_size: tuple[int, ...], batch: int = 1, build: Callable | None = None
) -> int:
    """Bytes of the input and of every tensor the leaf modules of model `name` return, in fp32, for `batch` inputs of
    `input_size`: an upper bound of a forward pass's activation memory, traced on the meta device (nothing is
    allocated and no weights are read, so a file that claims a huge input costs nothing to check).

    build: a task's `Task.build`, to trace its model (head included) on the backbone `name`."""
    with torch.device("meta"):
        model = create_model(name, **model_args)
        model = build(model) if build is not None else model
    total = batch * math.prod(input_size) * 4

    def add(module, args, out) -> None:
        nonlocal total
        total += sum(t.numel() * 4 for t in tensors(out))

    hooks = [m.register_forward_hook(add) for m in model.modules() if not any(m.children())]
    try:
        with torch.no_grad():
            model.eval()(torch.empty(batch, *input_size, device="meta"))
    finally:
        for h in hooks:
            h.remove()
    return total


def _si(n: float, unit: str = "") -> str:
    """1234567 → '1.23 M' (powers of 1000)."""
    for factor, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= factor:
            return f"{n / factor:.2f} {prefix}{unit}"
    return f"{n:g} {unit}".rstrip()


def _ksp(row: dict) -> str:
    """'5/1/2' for kernel 5×5, stride 1, padding 2; non-square sides as '1×7'; then ' d2' (dilation), ' ceil'."""
    if "kernel" not in row:
        return ""
    side = lambda v: str(v[0]) if len(set(v)) == 1 else "×".join(map(str, v))  # noqa: E731
    text = "/".join(side(row[k]) for k in ("kernel", "stride", "padding"))
    text += f" d{side(row['dilation'])}" if any(d != 1 for d in row["dilation"]) else ""
    return text + (" ceil" if row["ceil_mode"] else "")  # output size rounded up, not down


def format_summary(info: dict, title: str = "") -> str:
    """The summary as a text table (fits 110 columns for the registered models)."""
    shape = lambda s: "×".join(map(str, s))  # noqa: E731
    dash = lambda v: "—" if v is None else str(v)  # noqa: E731
    rows = [
        [
            r["name"],
            r["type"],
            _ksp(r),
            shape(r["output"]),
            f"{r['params']:,}",
            f"{r['macs']:,}",
            dash(r["rf"]),
            dash(r["jump"]),
        ]
        for r in info["layers"]
    ]
    head = ["layer", "type", "k/s/p", "output", "params", "MACs", "RF", "jump"]
    widths = [max(len(str(c)) for c in col) for col in zip(head, *rows, strict=True)]
    left = 2  # name and type left-aligned, numbers right-aligned

    def line(cells) -> str:
        parts = [f"{c:<{w}}" if i < left else f"{c:>{w}}" for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "  ".join(parts).rstrip()

    rule = "-" * len(line(head))
    lines = [title] if title else []
    lines += [line(head), rule, line(["input", "", "", shape(info["input"]), "", "", "1", "1"])]
    lines += [line(r) for r in rows]
    lines.append(rule)
    not_run = f"; {info['params_not_run']:,} in modules this pass did not run" if info["params_not_run"] else ""
    lines += [
        f"parameters: {info['params']:,} (trainable {info['trainable']:,}, frozen {info['frozen']:,}){not_run}",
        f"MACs: {info['macs']:,} ({_si(info['macs'])}; conv and linear multiply-accumulates)",
        f"activation memory: {_si(info['activation_bytes'], 'B')} per sample (fp32, every distinct layer output)",
        "k/s/p: kernel/stride/padding. RF: receptive field in input pixels (along the height; longest path where",
        "branches meet; — where each output sees the whole input). jump: input pixels between neighbouring outputs",
    ]
    if info.get("notation"):
        lines += _wrap_notation(info["notation"])
    return "\n".join(lines)


def _wrap_notation(text: str, width: int = 108) -> list[str]:
    """'notation: CL64k3-…' broken after a '-' into lines of at most `width` characters."""
    lines, line = [], "notation:"
    for token in text.split("-"):
        piece = (" " if line == "notation:" else "") + token + "-"
        if len(line) + len(piece) > width and line.strip():
            lines.append(line)
            line = "          "  # under the first token
        line += piece
    return lines + [line[:-1]]
