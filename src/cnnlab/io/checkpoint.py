"""Resume checkpoints: written atomically, read without unpickling code."""

from __future__ import annotations

from pathlib import Path

import torch

from cnnlab.files import check_zip, regular_file
from cnnlab.io.files import atomic_write

CHECKPOINT_FILE = "checkpoint.pt"


def check_torch_file(path: str | Path, what: str = "file") -> Path:
    """Refuse, before `torch.load` allocates anything, what is not a regular file and a torch file whose members
    would inflate to more than twice its size on disk: torch stores them uncompressed, so a 4 MB file that inflates
    to 4 GB was made to exhaust memory."""
    path = regular_file(path, what)
    size = path.stat().st_size
    check_zip(path, 2 * size + 2**20, f"twice its {size / 2**20:.1f} MiB on disk (torch stores tensors uncompressed)")
    return path


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write a resume checkpoint atomically (temp file + rename)."""
    atomic_write(Path(path), lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a resume checkpoint without unpickling code (weights_only=True); a damaged or foreign file is one
    clear error naming it (torch's advice to load it with weights_only=False must never reach a user)."""
    path = Path(path)
    if path.exists() and path.stat().st_size == 0:
        raise ValueError(f"{path}: an empty checkpoint file (a crash while it was written?); start the run again")
    if path.exists():
        check_torch_file(path, "checkpoint file")
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
