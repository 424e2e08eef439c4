"""Atomic file writes (`cnnlab.files.atomic_write`, re-exported here for the files of a run) and JSON files."""

from __future__ import annotations

import json
from pathlib import Path

from cnnlab.files import atomic_write, remove_stale_temporaries

__all__ = ["atomic_write", "remove_stale_temporaries", "save_json"]


def save_json(path: str | Path, data: dict) -> Path:
    """`data` as indented JSON, written atomically."""
    text = json.dumps(data, indent=2, default=str) + "\n"
    return atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text))
