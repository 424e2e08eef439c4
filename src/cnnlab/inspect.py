"""Per-layer summary of a model: output shape and parameter count for every leaf module."""

from __future__ import annotations

import torch
from torch import nn


def summary(model: nn.Module, input_size: tuple[int, int, int]) -> dict:
    """Run one zero input of `input_size` (C, H, W) through `model`; returns layer rows and totals."""
    rows: list[dict] = []
    hooks = []

    def hook(module: nn.Module, inputs, output) -> None:
        out = output[0] if isinstance(output, tuple) else output
        params = sum(p.numel() for p in module.parameters(recurse=False))
        rows.append({"name": names[module], "type": type(module).__name__, "output": list(out.shape[1:]),
                     "params": params})  # fmt: skip

    names = {m: n for n, m in model.named_modules()}
    for m in model.modules():
        if not list(m.children()):
            hooks.append(m.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(1, *input_size))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"input": list(input_size), "layers": rows, "output": list(out.shape[1:]), "params": total,
            "trainable": trainable, "frozen": total - trainable}  # fmt: skip


def format_summary(info: dict, title: str = "") -> str:
    """The summary as a text table."""
    shape = lambda s: "×".join(map(str, s))  # noqa: E731
    w_name = max([len("layer")] + [len(r["name"]) for r in info["layers"]]) + 2
    w_type = max([len("type")] + [len(r["type"]) for r in info["layers"]]) + 2
    lines = [title] if title else []
    lines.append(f"{'layer':<{w_name}}{'type':<{w_type}}{'output (C×H×W)':>18}{'params':>14}")
    lines.append("-" * (w_name + w_type + 32))
    lines.append(f"{'input':<{w_name}}{'':<{w_type}}{shape(info['input']):>18}{'':>14}")
    for r in info["layers"]:
        lines.append(f"{r['name']:<{w_name}}{r['type']:<{w_type}}{shape(r['output']):>18}{r['params']:>14,}")
    lines.append("-" * (w_name + w_type + 32))
    lines.append(f"total parameters: {info['params']:,} (trainable {info['trainable']:,}, frozen {info['frozen']:,})")
    return "\n".join(lines)
