"""Files: model files (.safetensors + JSON metadata), run folders, and atomically written resume checkpoints."""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
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
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        # torch.save reports a full disk as a RuntimeError from its zip writer ("unexpected pos …"): say what it is
        full = isinstance(e, RuntimeError) and shutil.disk_usage(path.parent).free < 2**20
        if isinstance(e, OSError) or full:
            reason = "No space left on device" if full else e.strerror
            raise OSError(
                errno.ENOSPC if full else e.errno,
                f"{path} could not be written ({reason}); the previous file, if any, is kept",
            ) from None
        raise


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files an atomic write killed midway left behind (.NAME.XXXX.tmp); returns them."""
    stale = [p for p in folder.glob(".*.tmp") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def save_json(path: str | Path, data: dict) -> None:
    def write(tmp):
        Path(tmp).write_text(json.dumps(data, indent=2, default=str) + "\n")

    _atomic_write(Path(path), write)


def save_model(path: str | Path, model: nn.Module, meta: dict) -> Path:
    """Save weights and metadata (model name, constructor args, classes, input size, normalization, …).

    `model` must come from create_model (it carries model_name / model_args). The file never holds code.
    Input size, mean and std missing from `meta` come from the model's default_cfg; classes default to "0".."N-1".
    Metadata that could not be loaded back is refused here, before anything is written.
    """
    if not hasattr(model, "model_name"):
        raise ValueError("save_model needs a model built by cnnlab.create_model (it records how to rebuild it)")
    cfg = getattr(model, "default_cfg", {})
    defaults = {k: list(cfg[k]) for k in ("input_size", "mean", "std") if k in cfg}
    num_classes = model.model_args.get("num_classes")
    if num_classes is not None:
        defaults["classes"] = [str(i) for i in range(num_classes)]
    meta = {"format": FORMAT, "model": model.model_name, "model_args": model.model_args, **defaults, **meta}
    check_meta(meta, path)
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
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: its cnnlab metadata is not valid JSON ({e.msg} at character {e.pos})") from None
    check_meta(meta, path)
    return meta


# sane limits for what a model file may ask for, checked before anything is allocated
MAX_SIDE = 4096  # pixels
MAX_CHANNELS = 16
MAX_CLASSES = 100_000


def check_meta(meta: object, path: str | Path) -> None:
    """Refuse metadata that is malformed or asks for absurd sizes, naming the key: a model file is user input."""

    def bad(what: str) -> ValueError:
        return ValueError(f"{path}: {what} in its cnnlab metadata")

    if not isinstance(meta, dict):
        raise bad("not a mapping")
    for key in ("model", "model_args", "classes", "input_size", "mean", "std"):
        if key not in meta:
            raise bad(f"no '{key}'")
    if not isinstance(meta["model"], str) or not isinstance(meta["model_args"], dict):
        raise bad("'model' must be a name and 'model_args' a mapping")
    size = meta["input_size"]
    if not (
        isinstance(size, list) and len(size) == 3 and all(isinstance(v, int) and not isinstance(v, bool) for v in size)
    ):
        raise bad(f"'input_size' {size!r} is not [C, H, W]")
    c, h, w = size
    if not (1 <= c <= MAX_CHANNELS and 1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
        raise bad(f"'input_size' {size} is out of range (C 1–{MAX_CHANNELS}, H and W 1–{MAX_SIDE})")
    classes = meta["classes"]
    if not (isinstance(classes, list) and 1 <= len(classes) <= MAX_CLASSES):
        raise bad(f"'classes' must be a list of 1–{MAX_CLASSES:,} names")
    for key in ("mean", "std"):
        values = meta[key]
        if not (isinstance(values, list) and len(values) == c and all(isinstance(v, int | float) for v in values)):
            raise bad(f"'{key}' must be {c} number(s), one per channel")
        if not all(math.isfinite(v) for v in values):
            raise bad(f"'{key}' {values} is not finite")
    if not all(v > 0 for v in meta["std"]):
        raise bad(f"'std' {meta['std']} must be > 0")
    args = meta["model_args"]
    for key in ("num_classes", "in_chans", "img_size"):
        value = args.get(key)
        if value is not None and not (isinstance(value, int) and 1 <= value <= max(MAX_SIDE, MAX_CLASSES)):
            raise bad(f"model_args '{key}' {value!r} is out of range")
    if args.get("num_classes", len(classes)) != len(classes):
        raise bad(f"model_args num_classes {args['num_classes']} differs from its {len(classes)} class names")


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild a model from a model file or run folder: returns (model in eval mode, metadata).

    A file whose tensors do not fit the model it names (missing, unexpected or wrong-shaped keys) or whose weights
    are not finite is refused with the file named: evaluating it would print numbers that mean nothing.
    """
    path = resolve_model_path(path)
    meta = read_meta(path)
    model = create_model(meta["model"], **meta["model_args"])
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
        raise ValueError(f"{path}: the weights do not fit {meta['model']}: {'; '.join(problems[:3])}{more}")
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ValueError(
            f"{path}: non-finite weights (nan or inf) in {', '.join(bad[:3])}; "
            "this model cannot be used (retrain, or use the run's best.pt / last good checkpoint)"
        )
    model.load_state_dict(tensors, strict=True)
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
    """Load a resume checkpoint without unpickling code (weights_only=True); a damaged or foreign file is one
    clear error naming it (torch's advice to load it with weights_only=False must never reach a user)."""
    path = Path(path)
    if path.exists() and path.stat().st_size == 0:
        raise ValueError(f"{path}: an empty checkpoint file (a crash while it was written?); start the run again")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:
        kind = (
            "it holds objects other than tensors and plain data" if "weights_only" in str(e) else str(e).split("\n")[0]
        )
        raise ValueError(f"{path}: not a cnnlab checkpoint ({kind})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise ValueError(f"{path}: not a cnnlab checkpoint (no model state in it)")
    return state
