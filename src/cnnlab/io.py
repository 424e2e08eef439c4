"""Files: model files (.safetensors + JSON metadata), run folders, and atomically written resume checkpoints."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from cnnlab.models import create_model

FORMAT = "cnnlab.model/1"
MODEL_FILE = "model.safetensors"
CHECKPOINT_FILE = "checkpoint.pt"


def _atomic_write(path: Path, write) -> None:
    """Call write(tmp_path), then rename over `path`: readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_json(path: str | Path, data: dict) -> None:
    def write(tmp):
        Path(tmp).write_text(json.dumps(data, indent=2, default=str) + "\n")

    _atomic_write(Path(path), write)


def save_model(path: str | Path, model: nn.Module, meta: dict) -> Path:
    """Save weights and metadata (model name, constructor args, classes, input size, normalization, …).

    `model` must come from create_model (it carries model_name / model_args). The file never holds code.
    """
    if not hasattr(model, "model_name"):
        raise ValueError("save_model needs a model built by cnnlab.create_model (it records how to rebuild it)")
    meta = {"format": FORMAT, "model": model.model_name, "model_args": model.model_args, **meta}
    # safetensors wants contiguous, unshared CPU tensors in the standard (NCHW) layout
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    path = Path(path)
    _atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={"cnnlab": json.dumps(meta)}))
    return path


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


def read_meta(path: str | Path) -> dict:
    """The metadata of a model file (or of a run folder's model)."""
    path = resolve_model_path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("cnnlab")
    except Exception as e:  # safetensors raises its own error types for non-safetensors input
        raise ValueError(f"{path}: not a safetensors model file ({e})") from None
    if raw is None:
        raise ValueError(f"{path}: a safetensors file without cnnlab metadata; it cannot be rebuilt by name")
    return json.loads(raw)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild a model from a model file or run folder: returns (model in eval mode, metadata)."""
    path = resolve_model_path(path)
    meta = read_meta(path)
    model = create_model(meta["model"], **meta["model_args"])
    model.load_state_dict(load_file(str(path), device=str(device)), strict=True)
    return model.to(device).eval(), meta


def check_run_dir(path: str | Path, overwrite: bool = False) -> Path:
    """Refuse an existing non-empty run folder unless `overwrite` (creates nothing)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"{path} exists and is not a folder; choose another run folder (out=…)")
    if path.exists() and any(path.iterdir()) and not overwrite:
        raise FileExistsError(f"{path} already exists; choose another run folder (--out) or overwrite it (--overwrite)")
    return path


def prepare_run_dir(path: str | Path, overwrite: bool = False) -> Path:
    """Create the run folder; an existing non-empty one is refused unless `overwrite`."""
    path = check_run_dir(path, overwrite)
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write a resume checkpoint atomically (temp file + rename)."""
    _atomic_write(Path(path), lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a resume checkpoint without unpickling code (weights_only=True)."""
    return torch.load(path, map_location=map_location, weights_only=True)
