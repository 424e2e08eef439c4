"""Model files: the weights as safetensors, the `RunMeta` as JSON in its metadata. Loading one never runs code."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from cnnlab.io.files import atomic_write
from cnnlab.io.meta import RunMeta
from cnnlab.models import create_model

MODEL_FILE = "model.safetensors"


def save_model(path: str | Path, model: nn.Module, meta: RunMeta | None = None, **values) -> Path:
    """Save the weights and their metadata atomically: `meta`, or `RunMeta.for_model(model, **values)` — the
    model's own defaults with what `values` gives (classes, input_size, mean, std, dataset, …).

    `model` must come from create_model (it carries model_name / model_args). The file never holds code.
    """
    if meta is not None and values:
        raise ValueError("give save_model either a RunMeta or the values to make one, not both")
    meta = meta or RunMeta.for_model(model, **values)
    if meta.model != getattr(model, "model_name", None) or meta.model_args != model.model_args:
        raise ValueError(f"the metadata describes {meta.model} {meta.model_args}, not this model")
    # safetensors wants contiguous, unshared CPU tensors in the standard (NCHW) layout
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    text = json.dumps(meta.to_dict())
    return atomic_write(Path(path), lambda tmp: save_file(tensors, tmp, metadata={"cnnlab": text}))


def resolve_model_path(path: str | Path) -> Path:
    """A run folder → its model.safetensors; a model file → itself."""
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_FILE
        if not path.exists():
            raise FileNotFoundError(f"{path.parent}: not a run folder (it has no {MODEL_FILE})")
    elif not path.exists():
        raise FileNotFoundError(f"{path}: no such run folder or model file")
    return path


def read_meta(path: str | Path) -> RunMeta:
    """The metadata of a model file (or of a run folder's model), validated."""
    path = resolve_model_path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("cnnlab")
    except Exception as e:  # safetensors raises its own error types for non-safetensors input
        raise ValueError(f"{path}: not a safetensors model file ({e})") from None
    if raw is None:
        raise ValueError(f"{path}: a safetensors file without cnnlab metadata; it cannot be rebuilt by name")
    return RunMeta.from_json(raw, path)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, RunMeta]:
    """Rebuild a model from a model file or run folder: returns (model in eval mode, metadata). The network is
    built by name (`create_model`), then the task in the metadata builds its model on it (`Task.build`).

    A file whose tensors do not fit the model it names (missing, unexpected or wrong-shaped keys) or whose weights
    are not finite is refused with the file named: evaluating it would print numbers that mean nothing.
    """
    path = resolve_model_path(path)
    meta = read_meta(path)
    model = meta.make_task().build(create_model(meta.model, **meta.model_args))  # a classifier: the model itself
    try:
        tensors = load_file(str(path), device=str(device))
    except Exception as e:  # safetensors' own error types for a damaged file
        raise ValueError(f"{path}: the weights cannot be read ({e})") from None
    expected = model.state_dict()
    problems = [f"missing {k}" for k in expected if k not in tensors]
    problems += [f"unexpected {k}" for k in tensors if k not in expected]
    problems += [
        f"{k} has shape {tuple(v.shape)}, the model needs {tuple(expected[k].shape)}"
        for k, v in tensors.items()
        if k in expected and v.shape != expected[k].shape
    ]
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise ValueError(f"{path}: the weights do not fit {meta.model}: {'; '.join(problems[:3])}{more}")
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ValueError(
            f"{path}: non-finite weights (nan or inf) in {', '.join(bad[:3])}; "
            "this model cannot be used (retrain, or use the run's best.pt / last good checkpoint)"
        )
    model.load_state_dict(tensors, strict=True)
    return model.to(device).eval(), meta
