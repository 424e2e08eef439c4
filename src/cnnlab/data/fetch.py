"""Finding a named dataset's files: the search path (--data-dir, $CNNLAB_DATA, the user cache, the system path of a
distribution package), the user cache, and the download from the official address, verified by checksum."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from cnnlab.data.catalog import DatasetSpec, get_spec
from cnnlab.files import atomic_write


class DatasetNotFound(FileNotFoundError):
    """A named dataset that is on none of the searched paths and could not be downloaded."""


def cache_dir() -> Path:
    """The user cache for datasets: $CNNLAB_CACHE, else $XDG_CACHE_HOME/cnnlab, else ~/.cache/cnnlab."""
    if os.environ.get("CNNLAB_CACHE"):
        return Path(os.environ["CNNLAB_CACHE"]) / "datasets"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "cnnlab" / "datasets"


def search_path(spec: DatasetSpec, data_dir: str | Path | None = None) -> list[tuple[str, Path]]:
    """(label, folder) pairs searched for `spec`, in order."""
    places = []
    if data_dir:
        places.append(("--data-dir", Path(data_dir)))
    if os.environ.get("CNNLAB_DATA"):
        places.append(("$CNNLAB_DATA", Path(os.environ["CNNLAB_DATA"])))
    places.append(("user cache", cache_dir() / spec.name))
    places += [("system package", Path(d)) for d in spec.system_dirs]
    return places


def locate(name: str, data_dir: str | Path | None = None) -> Path | None:
    """The folder holding the official files of dataset `name`, or None."""
    spec = get_spec(name)
    for _, folder in search_path(spec, data_dir):
        found = spec.present_in(folder)
        if found:
            return found
    return None


def how_to_get(spec: DatasetSpec, data_dir: str | Path | None = None) -> str:
    """A message listing where `spec` was looked for and how to get it."""
    looked = "\n".join(f"  {label}: {folder}" for label, folder in search_path(spec, data_dir))
    ways = []
    if spec.system_hint:
        ways.append(f"install the distribution package: {spec.system_hint}")
    ways.append(f"download it into the cache: cnnlab datasets get {spec.name}  (from {spec.downloads[0][0]})")
    ways.append(
        f"or put the files ({', '.join(spec.files)}; .gz accepted) in a folder named by --data-dir FOLDER or $CNNLAB_DATA"
    )
    return f"dataset '{spec.name}' not found. Looked in:\n{looked}\nTo get it:\n" + "\n".join(f"  - {w}" for w in ways)


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download(name: str, timeout: float = 30.0) -> Path:
    """Download dataset `name` from its official address into the cache, checking each file's md5."""
    spec = get_spec(name)
    target = cache_dir() / spec.name
    target.mkdir(parents=True, exist_ok=True)
    for url, md5 in spec.downloads:
        with tempfile.TemporaryDirectory(dir=target) as tmp:
            file = Path(tmp) / url.rsplit("/", 1)[1]
            try:
                with urllib.request.urlopen(url, timeout=timeout) as r, open(file, "wb") as out:
                    shutil.copyfileobj(r, out)
            except OSError as e:
                raise DatasetNotFound(f"download of {url} failed ({e})\n" + how_to_get(spec)) from None
            if _md5(file) != md5:
                raise DatasetNotFound(f"{url}: checksum mismatch (expected md5 {md5}); the file was discarded")
            if file.name.endswith(".tar.gz"):
                with tarfile.open(file) as tar:
                    tar.extractall(target, filter="data")
            else:
                file.replace(target / file.name)
    found = spec.present_in(target)
    if not found:
        raise DatasetNotFound(f"downloaded {spec.name} but its files are not complete in {target}")
    return found


def get(name: str, data_dir: str | Path | None = None, allow_download: bool = True) -> tuple[Path, str]:
    """Put dataset `name` in the user cache; returns (folder, what was done)."""
    spec = get_spec(name)
    cached = spec.present_in(cache_dir() / spec.name)
    if cached:
        return cached, "already in the cache"
    found = locate(name, data_dir)
    if found:
        target = cache_dir() / spec.name
        target.mkdir(parents=True, exist_ok=True)
        for f in found.iterdir():
            if f.is_file():  # a copy cut short must not pass for the data set
                atomic_write(target / f.name, lambda tmp, f=f: shutil.copy2(f, tmp))
        return spec.present_in(target), f"copied from {found}"
    if not allow_download:
        raise DatasetNotFound(how_to_get(spec, data_dir))
    return download(name), "downloaded (md5 verified)"
