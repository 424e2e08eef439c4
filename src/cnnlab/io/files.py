"""Atomic file writes: a reader (or a crash) sees the old file or the new one, never half of either."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | Path, write: Callable[[str], object]) -> Path:
    """Call write(tmp_path) on a temporary file beside `path`, flush it to disk, then rename it over `path`.

    A kill, a full disk or an exception leaves the previous file whole (and no temporary file behind, except after
    SIGKILL: `remove_stale_temporaries` clears those). A full disk is one OSError naming the file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:  # the bytes reach the disk before the rename makes them the file
            os.fsync(f.fileno())
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
    return path


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files an atomic write killed midway left behind (.NAME.XXXX.tmp); returns them."""
    stale = [p for p in folder.glob(".*.tmp") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def save_json(path: str | Path, data: dict) -> Path:
    """`data` as indented JSON, written atomically."""
    text = json.dumps(data, indent=2, default=str) + "\n"
    return atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text))
