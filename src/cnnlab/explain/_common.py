"""What every explanation needs: images in and out of the model's input space, and layers found by module name."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cnnlab.data.images import load_model_input
from cnnlab.data.transforms import Normalize
from cnnlab.inspect import Field, tracing_fields
from cnnlab.io import RunMeta
from cnnlab.models import main_output
from cnnlab.models.hooks import record


def read_image(path: str | Path, meta: RunMeta) -> tuple[torch.Tensor, list[str]]:
    """An image file as the model reads it (mode and size converted as for prediction): uint8 (C, H, W), notes."""
    return load_model_input(path, meta.input_size)


def to_input(images: torch.Tensor, meta: RunMeta) -> torch.Tensor:
    """uint8 (N, C, H, W) → normalised float32 (N, C, H, W), the model's input space."""
    return Normalize(meta.mean, meta.std)(images)


def _stats(meta: RunMeta, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    shape = (1, -1, 1, 1)
    mean = torch.tensor(meta.mean, dtype=like.dtype, device=like.device).view(shape)
    std = torch.tensor(meta.std, dtype=like.dtype, device=like.device).view(shape)
    return mean, std


def from_pixels(pixels: torch.Tensor, meta: RunMeta) -> torch.Tensor:
    """Pixels on the 0–1 scale (N, C, H, W) → the model's input space."""
    mean, std = _stats(meta, pixels)
    return (pixels - mean) / std


def to_pixels(x: torch.Tensor, meta: RunMeta) -> np.ndarray:
    """Model input (N, C, H, W) → pixels on the 0–1 scale, (N, H, W, C) float32 for plotting."""
    mean, std = _stats(meta, x)
    return (x.detach() * std + mean).clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()


def pixel_bounds(meta: RunMeta, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (1, C, 1, 1) lowest and highest values a real image takes in the model's input space."""
    return from_pixels(torch.zeros_like(like[:1, :, :1, :1]), meta), from_pixels(
        torch.ones_like(like[:1, :, :1, :1]), meta
    )


@contextmanager
def explaining(model: nn.Module) -> Iterator[nn.Module]:
    """The model in eval mode and float32 for the block (gradients are taken without autocast), restored after."""
    was_training = model.training
    dtype = next(model.parameters()).dtype
    model.eval().float()
    try:
        yield model
    finally:
        model.to(dtype).train(was_training)


def logits_of(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Class scores (N, classes) of a model whose forward may also return auxiliary outputs."""
    return main_output(model(x))


def layer_names(model: nn.Module) -> list[str]:
    """Every named sub-module, in definition order."""
    return [name for name, _ in model.named_modules() if name]


def find_layer(model: nn.Module, name: str) -> nn.Module:
    """The sub-module called `name`; an unknown name is an error that lists the valid ones."""
    modules = dict(model.named_modules())
    if name and name in modules:
        return modules[name]
    names = layer_names(model)
    close = difflib.get_close_matches(name, names, n=3)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    head = [n for n in names if n.startswith("head.")]
    if hasattr(model, "backbone") and head:  # a task model: its head (a segment model's decoder) first
        raise ValueError(
            f"no layer named '{name}'; {hint}the head's layers: {', '.join(head)}; the backbone's layers are "
            "named backbone.… (`cnnlab explain RUN layers` lists them all with output shapes)"
        )
    raise ValueError(
        f"no layer named '{name}'; {hint}valid layers: {', '.join(names)} "
        "(`cnnlab explain RUN layers` lists them with output shapes)"
    )


def capture(model: nn.Module, layer: str, x: torch.Tensor) -> torch.Tensor:
    """Output of `layer` at its first call when `x` runs through `model`, still in x's autograd graph; the layers
    after it are not run (`cnnlab.models.hooks.record` with stop=True)."""
    find_layer(model, layer)  # an unknown name: the error that lists the valid ones
    with record(model, [layer], stop=True) as rec:
        logits_of(model, x)
    return rec.output(layer)


def spatial_output(model: nn.Module, layer: str, x: torch.Tensor) -> torch.Tensor:
    """Output (N, C, H, W) of `layer`; a layer without a spatial map (a fully connected one) is an error."""
    out = capture(model, layer, x)
    if out.ndim != 4:
        raise ValueError(
            f"layer '{layer}' outputs {'×'.join(map(str, out.shape[1:]))} values per image, no spatial "
            "map; choose a convolutional layer (`cnnlab explain RUN layers` lists the output shapes)"
        )
    return out


def map_field(
    model: nn.Module, input_size: tuple[int, ...] | list[int], forward: Callable[[torch.Tensor], torch.Tensor]
) -> tuple[Field | None, torch.Size]:
    """(receptive field, shape) of the feature map `forward(x)` returns for a zero input x of `input_size` (C, H, W).

    The field comes from the kernel/stride/padding recurrence along the layers that lead to the map
    (`cnnlab.inspect.tracing_fields`, the trace behind `cnnlab summary`): exact, the same for every input and every
    channel, and None where unknown (after a global pooling, a resize, an op of unknown geometry).
    """
    param = next(model.parameters(), None)
    x = torch.zeros(1, *input_size, device=param.device if param is not None else "cpu")
    with explaining(model), torch.no_grad(), tracing_fields(model, x) as trace:
        a = forward(x)
    return trace.field(a), a.shape


def first_conv(model: nn.Module) -> str:
    """Name of the first module with a 4-D weight (a 2-D convolution)."""
    for name, module in model.named_modules():
        w = getattr(module, "weight", None)
        if isinstance(w, torch.Tensor) and w.ndim == 4:
            return name
    raise ValueError("the model has no convolutional layer")


def list_layers(model: nn.Module, input_size: tuple[int, int, int]) -> list[dict]:
    """Every named module with its type and output shape (C, H, W) for one input of `input_size`."""
    with explaining(model), torch.no_grad(), record(model, detach=True) as rec:
        logits_of(model, torch.zeros(1, *input_size))
    rows = []
    for name, m in model.named_modules():
        if name:
            out = next((c.out for c in rec.calls if c.name == name and c.out is not None), None)
            shape = None if out is None else list(out.shape[1:])
            rows.append({"name": name, "type": type(m).__name__, "output": shape})
    return rows


def format_layers(rows: list[dict]) -> str:
    """The layer list as a text table; a layer never called in eval mode shows '-'."""
    w = max(len(r["name"]) for r in rows) + 2
    t = max(len(r["type"]) for r in rows) + 2
    lines = [f"{'layer':<{w}}{'type':<{t}}output (C×H×W)", "-" * (w + t + 16)]
    for r in rows:
        shape = "×".join(map(str, r["output"])) if r["output"] is not None else "-"
        lines.append(f"{r['name']:<{w}}{r['type']:<{t}}{shape}")
    return "\n".join(lines)


def class_index(target: int | str | None, classes: list[str]) -> int | None:
    """A class given by index or name → its index (None stays None)."""
    if target is None:
        return None
    if isinstance(target, str) and not target.lstrip("-").isdigit():
        if target not in classes:
            raise ValueError(f"unknown class '{target}'; classes: {', '.join(classes)}")
        return classes.index(target)
    k = int(target)
    if not 0 <= k < len(classes):
        raise ValueError(f"class index {k} is out of range 0–{len(classes) - 1}")
    return k
