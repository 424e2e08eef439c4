"""The file system as cnnlab meets it: writes that never leave half a file, outputs that never destroy an input,
and reads bounded by what a file is rather than by what it claims.

- `atomic_write(path, write)`: every file cnnlab writes goes through it (temporary file beside the target, fsync,
  rename), so a kill or a full disk leaves the old file whole.
- `check_output(out, reads)`: an output path is refused in one line when writing it would overwrite, sit inside
  or (for an output that replaces a whole folder) contain a path the verb reads.
- `regular_file(path, what)`: a FIFO, a device (`/dev/zero`) or a folder where a file is expected is refused
  before it is opened.
- `check_zip(path, …)`: a zip container (an .npz, a torch file) whose members would inflate beyond a bound is
  refused from its central directory, before anything is inflated; `available_memory()` is the bound of data
  files (a data set is as large as it is, but never larger than the machine).

This module sits at the bottom layer and imports nothing of cnnlab: data readers, figures and model files use it.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path


def atomic_write(path: str | Path, write: Callable[[str], object]) -> Path:
    """Call write(tmp_path) on a temporary file beside `path`, flush it to disk, then rename it over `path`.

    A kill, a full disk or an exception leaves the previous file whole (and no temporary file behind, except after
    SIGKILL: `remove_stale_temporaries` clears those). A folder that cannot be written in, or a full disk, is one
    OSError naming `path` (never the temporary file).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise OSError(
            e.errno, f"{path} could not be written ({e.strerror}); the previous file, if any, is kept"
        ) from None
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


# ---- outputs never destroy inputs


@dataclass(frozen=True)
class Read:
    """A path a verb reads: its outputs must leave it alone.

    what: how a message names it ("the data", "the model file", "the run folder").
    inside_ok: a new file may be written inside it (a run folder a verb reads: model.onnx beside its model); the
    files the run itself holds are then listed as reads of their own.
    """

    path: str | Path
    what: str
    inside_ok: bool = False


def real_path(path: str | Path) -> Path:
    """Absolute, user folder expanded, every link resolved: two names of one place compare equal."""
    return Path(os.path.realpath(Path(path).expanduser()))


def _within(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def _same_file(a: str | Path, b: str | Path) -> bool:
    try:
        return os.path.samefile(a, b)  # hard links too
    except OSError:
        return False


def check_output(
    out: str | Path, reads: Iterable[Read], flag: str = "--out", replaces: bool = False, folder: bool = False
) -> Path:
    """`out`, checked as a path to write: refused in one line (ValueError) when it is a path the verb reads (the same
    file under any name), sits inside one (unless that read allows new files inside), or — when `replaces` (the
    output replaces a whole folder) — contains one. A file output (`folder` False) must not be an existing folder.
    Reads that do not exist are skipped: there is nothing to destroy.
    """
    real = real_path(out)
    if not folder and real.is_dir():
        raise ValueError(f"{flag} {out} is a folder; give a file name inside it")
    for read in reads:
        if not os.path.lexists(read.path):  # nothing there to destroy (its reader gives its own error)
            continue
        there = real_path(read.path)
        if real == there or _same_file(out, read.path):
            raise ValueError(f"{flag} {out} is {read.what} ({read.path}); writing it would destroy it: choose another")
        if _within(real, there) and not read.inside_ok:
            raise ValueError(
                f"{flag} {out} is inside {read.what} ({read.path}); writing there would change it: choose a path "
                "outside it"
            )
        if replaces and _within(there, real):
            raise ValueError(
                f"{flag} {out} holds {read.what} ({read.path}); replacing it would delete it: choose another folder"
            )
    _check_writable(Path(out), flag)
    return Path(out)


def _check_writable(out: Path, flag: str) -> None:
    """A file can be created where `out` will be (in its folder, or the nearest folder above that exists): checked
    before the work rather than found out after it."""
    place = Path(os.path.abspath(out)).parent
    while not place.exists() and place != place.parent:
        place = place.parent
    try:
        with tempfile.TemporaryFile(dir=place):
            pass
    except OSError as e:
        raise OSError(e.errno, f"{out} could not be written ({e.strerror}); choose another {flag}") from None


def regular_file(path: str | Path, what: str = "file") -> Path:
    """`path`, refused in one line unless it is a regular file (a FIFO would block, /dev/zero never ends)."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such {what}") from None
    except OSError as e:
        raise OSError(e.errno, f"{path}: cannot be read ({e.strerror})") from None
    if stat.S_ISDIR(mode):
        raise ValueError(f"{path} is a folder; give a {what}")
    if not stat.S_ISREG(mode):
        raise ValueError(f"{path}: not a regular file (a FIFO or device); give a {what}")
    return path


# ---- bounded reads of compressed containers


def available_memory() -> int:
    """Bytes of memory this machine can give without swapping (Linux's MemAvailable; else the free pages)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 2**62  # unknown: no bound from this side


def zip_sizes(path: str | Path) -> list[tuple[str, int, int]]:
    """(member, inflated size, stored size) of every member of a zip file, from its central directory alone."""
    with zipfile.ZipFile(path) as z:
        return [(i.filename, i.file_size, i.compress_size) for i in z.infolist()]


def check_zip(path: str | Path, max_bytes: int, why: str) -> int:
    """Refuse (ValueError naming the file) a zip container whose members would inflate to more than `max_bytes`
    in all; `why` says where the bound comes from. Only the central directory is read: nothing is inflated. Returns
    the inflated total. A file that is not a zip is left to its reader's own message."""
    try:
        members = zip_sizes(path)
    except (zipfile.BadZipFile, OSError, ValueError):
        return 0
    total = sum(size for _, size, _ in members)
    if total > max_bytes:
        biggest = max(members, key=lambda m: m[1])
        raise ValueError(
            f"{path}: its members would inflate to {total / 2**20:,.0f} MiB ({biggest[0]}: "
            f"{biggest[1] / 2**20:,.0f} MiB from {biggest[2] / 2**20:,.1f} MiB), more than {why}; refused before "
            "inflating it"
        )
    return total
