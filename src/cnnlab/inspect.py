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
  residual add, an Inception concatenation) the result takes the largest r and j among its inputs: the field of
  the longest path, the usual figure for ResNet-50 (483). After a flatten, a fully connected layer or a global
  pooling every output sees the whole image and the table shows '—' (also for ops whose geometry is unknown).

Totals: parameters (trainable / frozen, and those of modules the pass never ran, such as auxiliary heads in
eval mode), MACs, and activation memory — the bytes of every distinct tensor a module returns for one sample in
fp32 (an in-place ReLU or a flatten view shares its input's memory and is counted once; the input is not counted).

`depth` collapses nested modules: a module at that nesting depth (``layer1`` is depth 1, ``layer1.0`` depth 2)
becomes one row with the sum of its parameters and MACs and the shape and field of its output — an Inception or a
residual block on one line, as in the GoogLeNet paper's table.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from cnnlab.models.notation import to_notation

_WINDOWED = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)
_ADAPTIVE = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
# a row, in this order; kernel … ceil_mode only for convs and pools
_ROW_KEYS = ("name", "type", "depth", "kernel", "stride", "padding", "dilation", "ceil_mode", "output", "params",
             "macs", "rf", "jump")  # fmt: skip


def _tensors(obj) -> list[torch.Tensor]:
    """Every tensor inside nested tuples / lists / dicts."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (tuple, list)):
        return [t for item in obj for t in _tensors(item)]
    if isinstance(obj, dict):
        return [t for item in obj.values() for t in _tensors(item)]
    return []


def _pair(value) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)  # type: ignore[return-value]


class _FieldTracer(TorchFunctionMode):
    """Carries the receptive field (r, j) of every tensor to the tensors torch computes from it.

    `fields` maps id(tensor) → (tensor, (r, j) or None); holding the tensor keeps its id from being reused.
    Module hooks overwrite the result of convs and pools with the exact recurrence.
    """

    def __init__(self, fields: dict) -> None:
        super().__init__()
        self.fields = fields

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        known = [self.fields[id(t)] for t in _tensors((args, kwargs)) if id(t) in self.fields]
        if known:
            for t in _tensors(out):
                self.fields[id(t)] = (t, _merge(known, t))
        return out


def _merge(inputs: list[tuple], out: torch.Tensor) -> tuple[int, int] | None:
    """Field of an op's output: the largest of its inputs' with the same H×W; None when flattened or resized."""
    if out.dim() != 4:
        return None
    same = [f for t, f in inputs if f is not None and t.dim() == 4 and t.shape[-2:] == out.shape[-2:]]
    if not same:
        return None
    return max(r for r, _ in same), max(j for _, j in same)


def _window_field(m: nn.Module, field: tuple[int, int] | None, x: torch.Tensor, out: torch.Tensor):
    """(r, j) after a conv / pool / adaptive pool module, from its input's field."""
    if field is None or out.dim() != 4:
        return None
    r, j = field
    if isinstance(m, _ADAPTIVE):  # a no-op at this size (VGG's 7×7 pool at 224), else global or unknown
        return field if out.shape[-2:] == x.shape[-2:] else None
    k, s, d = _pair(m.kernel_size)[0], _pair(m.stride or m.kernel_size)[0], _pair(getattr(m, "dilation", 1))[0]
    return r + (k - 1) * d * j, j * s


def _macs(m: nn.Module, out: torch.Tensor) -> int:
    if isinstance(m, nn.Conv2d):  # weight (C_out, C_in/groups, k_h, k_w), once per output position
        return m.weight.numel() * out.shape[-2] * out.shape[-1]
    if isinstance(m, nn.Linear):  # weight (out, in), once per row of the (flattened) input
        return m.weight.numel() * (out.numel() // out.shape[-1])
    return 0


def _geometry(m: nn.Module) -> dict:
    """Kernel, stride, padding, dilation of a conv or pool (height, width); empty for other modules."""
    if not isinstance(m, _WINDOWED):
        return {}
    pad = m.padding if not isinstance(m.padding, str) else {"valid": 0, "same": _pair(m.kernel_size)[0] // 2}[m.padding]
    return {"kernel": list(_pair(m.kernel_size)), "stride": list(_pair(m.stride or m.kernel_size)),
            "padding": list(_pair(pad)), "dilation": list(_pair(getattr(m, "dilation", 1))),
            "ceil_mode": bool(getattr(m, "ceil_mode", False))}  # fmt: skip


class _Recorder:
    """Forward hooks that turn every module call into a row (leaf calls and nested blocks alike)."""

    def __init__(self, model: nn.Module) -> None:
        self.names = {m: n for n, m in model.named_modules() if n}
        self.fields: dict = {}
        self.calls: list[dict] = []
        self.started = 0  # calls begun so far: orders rows as the calls begin (a block before its layers)
        self.open: list[dict] = []  # calls in progress, outermost first: a leaf's MACs add to all of them
        self.counted: set[nn.Module] = set()  # modules whose parameters are in a row already
        self.outputs: list[torch.Tensor] = []  # every module output, kept alive so memory addresses stay unique
        self.handles = []
        for m in self.names:
            self.handles.append(m.register_forward_pre_hook(self.pre))
            self.handles.append(m.register_forward_hook(self.post))

    def pre(self, m: nn.Module, args) -> None:
        self.open.append({"module": m, "order": self.started, "macs": 0})
        self.started += 1

    def post(self, m: nn.Module, args, output) -> None:
        call = self.open.pop()
        outs, ins = _tensors(output), _tensors(args)
        if not outs:
            return
        out = outs[0]
        leaf = not list(m.children())
        field = self.fields.get(id(out), (None, None))[1]
        if leaf and isinstance(m, (*_WINDOWED, *_ADAPTIVE)) and ins:
            field = _window_field(m, self.fields.get(id(ins[0]), (None, None))[1], ins[0], out)
            self.fields[id(out)] = (out, field)
        if leaf:
            macs = _macs(m, out)
            for c in (*self.open, call):
                c["macs"] += macs
        name = self.names[m]
        params = sum(p.numel() for p in m.parameters(recurse=not leaf)) if m not in self.counted else 0
        self.counted.add(m)
        self.outputs.append(out)
        call.update(name=name, type=type(m).__name__, depth=name.count(".") + 1, leaf=leaf, **_geometry(m),
                    output=list(out.shape[1:]), params=params, rf=field[0] if field else None,
                    jump=field[1] if field else None)  # fmt: skip
        self.calls.append(call)

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def summary(model: nn.Module, input_size: tuple[int, int, int], depth: int | None = None) -> dict:
    """Run one zero input of `input_size` (C, H, W) through `model`; returns layer rows and totals.

    `depth`: show modules nested deeper than this as part of their ancestor at that depth (None: every leaf).
    """
    if depth is not None and depth < 1:
        raise ValueError(f"depth must be 1 or more (1 = the model's direct children), got {depth}")
    param = next(model.parameters(), None)
    x = torch.zeros(1, *input_size, device=param.device if param is not None else "cpu")
    rec = _Recorder(model)
    rec.fields[id(x)] = (x, (1, 1))  # an input pixel sees itself: r = 1, jump 1
    was_training = model.training
    model.eval()  # batch 1: batch norm uses its running statistics, dropout is off
    try:
        with torch.no_grad(), _FieldTracer(rec.fields):
            out = model(x)
    finally:
        rec.remove()
        model.train(was_training)
    out = _tensors(out)[0]
    calls = sorted(rec.calls, key=lambda c: c["order"])
    shown = [c for c in calls if (c["leaf"] and (depth is None or c["depth"] <= depth)) or c["depth"] == depth]
    ran = {c["module"] for c in calls}
    # distinct output memory: in-place results and views share their input's storage
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in rec.outputs}
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    not_run = sum(p.numel() for m in model.modules() if m not in ran and m is not model
                  for p in m.parameters(recurse=False))  # fmt: skip
    layers = [{k: c[k] for k in _ROW_KEYS if k in c} for c in shown]
    return {"input": list(input_size), "depth": depth, "layers": layers, "output": list(out.shape[1:]),
            "params": total, "trainable": trainable, "frozen": total - trainable, "params_not_run": not_run,
            "macs": sum(c["macs"] for c in calls if c["leaf"]), "activation_bytes": sum(storages.values()),
            "notation": to_notation(model, tuple(input_size))}  # fmt: skip


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
    side = lambda v: str(v[0]) if v[0] == v[1] else f"{v[0]}×{v[1]}"  # noqa: E731
    text = "/".join(side(row[k]) for k in ("kernel", "stride", "padding"))
    text += f" d{side(row['dilation'])}" if row["dilation"] != [1, 1] else ""
    return text + (" ceil" if row["ceil_mode"] else "")  # output size rounded up, not down


def format_summary(info: dict, title: str = "") -> str:
    """The summary as a text table (fits 110 columns for the registered models)."""
    shape = lambda s: "×".join(map(str, s))  # noqa: E731
    dash = lambda v: "—" if v is None else str(v)  # noqa: E731
    rows = [[r["name"], r["type"], _ksp(r), shape(r["output"]), f"{r['params']:,}", f"{r['macs']:,}",
             dash(r["rf"]), dash(r["jump"])] for r in info["layers"]]  # fmt: skip
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
