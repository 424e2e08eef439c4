"""Resume checkpoints: written atomically, read without unpickling code."""

from __future__ import annotations

from pathlib import Path

import torch

from cnnlab.io.files import atomic_write

CHECKPOINT_FILE = "checkpoint.pt"


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write a resume checkpoint atomically (temp file + rename)."""
    atomic_write(Path(path), lambda tmp: torch.save(state, tmp))


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
