"""Datasets by name: where their official files are found, how they are fetched, and how they are read.

Search order for a named dataset (first hit wins): --data-dir, $CNNLAB_DATA, the user cache, the system path of a
distribution package, and finally a download from the official address, verified by checksum.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from cnnlab.data import cifar
from cnnlab.data.arrays import read_csv, read_npz
from cnnlab.data.dataset import DataSplits, ImageSet, resolve_split_size, split_off
from cnnlab.data.folder import read_image_folder
from cnnlab.data.idx import read_idx
from cnnlab.data.images import channels_mode


class DatasetNotFound(FileNotFoundError):
    """A named dataset that is on none of the searched paths and could not be downloaded."""


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    title: str
    files: tuple[str, ...]  # files that must be present (a .gz variant of each is accepted for IDX)
    classes: tuple[str, ...]
    read: Callable[[Path], tuple[ImageSet, ImageSet]]
    # official download: (url, md5 of the downloaded file); archives are unpacked into the cache folder
    downloads: tuple[tuple[str, str], ...]
    system_dirs: tuple[str, ...] = ()
    system_hint: str = ""

    def present_in(self, folder: Path) -> Path | None:
        """The folder holding all files (folder itself or a known sub-folder), or None."""
        for cand in (folder, folder / self.name, folder / "cifar-10-batches-bin"):
            if cand.is_dir() and all(_find(cand, f) for f in self.files):
                return cand
        return None


def _find(folder: Path, name: str) -> Path | None:
    for cand in (folder / name, folder / (name + ".gz")):
        if cand.is_file():
            return cand
    return None


def _read_idx_pair(folder: Path, prefix: str, classes: tuple[str, ...]) -> ImageSet:
    images = read_idx(_find(folder, f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(_find(folder, f"{prefix}-labels-idx1-ubyte"))
    if images.ndim != 3 or labels.shape != (images.shape[0],):
        raise ValueError(f"{folder}: {prefix} images {tuple(images.shape)} do not match labels {tuple(labels.shape)}")
    return ImageSet(images.unsqueeze(1), labels.long(), list(classes))


def _idx_reader(classes: tuple[str, ...]) -> Callable[[Path], tuple[ImageSet, ImageSet]]:
    return lambda folder: (_read_idx_pair(folder, "train", classes), _read_idx_pair(folder, "t10k", classes))


def _read_cifar10(folder: Path) -> tuple[ImageSet, ImageSet]:
    parts = [cifar.read_cifar_bin(folder / f"data_batch_{i}.bin") for i in range(1, 6)]
    train = ImageSet(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]), cifar.CLASSES)
    test = ImageSet(*cifar.read_cifar_bin(folder / "test_batch.bin"), cifar.CLASSES)
    return train, test


_IDX_FILES = tuple(f"{s}-{k}-idx{d}-ubyte" for s in ("train", "t10k") for k, d in (("images", 3), ("labels", 1)))
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
_FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"

DATASETS: dict[str, DatasetSpec] = {
    s.name: s
    for s in (
        DatasetSpec(
            "fashion-mnist",
            "Fashion-MNIST (Zalando): 60,000 train + 10,000 test 28×28 grayscale, 10 classes",
            _IDX_FILES,
            FASHION_CLASSES,
            _idx_reader(FASHION_CLASSES),
            (
                (_FASHION_URL + "train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
                (_FASHION_URL + "train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
                (_FASHION_URL + "t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
                (_FASHION_URL + "t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
            ),
            ("/usr/share/datasets/fashion-mnist",),
            "sudo apt-get install dataset-fashion-mnist",
        ),
        DatasetSpec(
            "mnist",
            "MNIST handwritten digits: 60,000 train + 10,000 test 28×28 grayscale, 10 classes",
            _IDX_FILES,
            tuple(str(i) for i in range(10)),
            _idx_reader(tuple(str(i) for i in range(10))),
            (
                (_MNIST_URL + "train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
                (_MNIST_URL + "train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
                (_MNIST_URL + "t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
                (_MNIST_URL + "t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
            ),
            ("/usr/share/datasets/mnist",),
        ),
        DatasetSpec(
            "cifar10",
            "CIFAR-10 (binary version): 50,000 train + 10,000 test 32×32 RGB, 10 classes",
            tuple(f"data_batch_{i}.bin" for i in range(1, 6)) + ("test_batch.bin",),
            tuple(cifar.CLASSES),
            _read_cifar10,
            (
                (
                    "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
                    "c32a1d4ab5d03f1284b67883e8d87530",
                ),
            ),
            ("/usr/share/datasets/cifar10", "/usr/share/datasets/cifar-10"),
        ),
    )
}


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


def get_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset '{name}'; known: {', '.join(DATASETS)}, or folder:PATH, npz:PATH, csv:PATH")
    return DATASETS[name]


def how_to_get(spec: DatasetSpec, data_dir: str | Path | None = None) -> str:
    """A message listing where `spec` was looked for and how to get it."""
    looked = "\n".join(f"  {label}: {folder}" for label, folder in search_path(spec, data_dir))
    ways = []
    if spec.system_hint:
        ways.append(f"install the distribution package: {spec.system_hint}")
    ways.append(f"download it into the cache: cnnlab datasets get {spec.name}  (from {spec.downloads[0][0]})")
    ways.append(f"or put the files ({', '.join(spec.files)}; .gz accepted) in a folder and pass --data-dir FOLDER")
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
            if f.is_file():
                shutil.copy2(f, target / f.name)
        return spec.present_in(target), f"copied from {found}"
    if not allow_download:
        raise DatasetNotFound(how_to_get(spec, data_dir))
    return download(name), "downloaded (md5 verified)"


def _default_val(val_split: float | int | None, n: int) -> int:
    # named 60 k sets: 5,000 (Keras-course convention); other sources: 10 %
    if val_split is None:
        return 5000 if n >= 50_000 else max(1, n // 10) if n >= 10 else 0
    return resolve_split_size(val_split, n)


def load_dataset(
    spec: str,
    data_dir: str | Path | None = None,
    val_split: float | int | None = None,
    seed: int = 0,
    mode: str | None = None,
    image_size: int | tuple[int, int] | None = None,
    strict: bool = False,
    allow_download: bool = True,
) -> DataSplits:
    """Load a dataset by name (`fashion-mnist`, `mnist`, `cifar10`) or source (`folder:`, `npz:`, `csv:`).

    val_split: validation samples carved from train (count or fraction; None → 5,000 for the 60 k sets, 10 %
    otherwise; 0 → none). mode: 'L' or 'RGB' to convert to. image_size: resize every image to this size.
    """
    kind, _, path = spec.partition(":")
    notes: list[str] = []
    val = None
    if path:
        source = Path(path).expanduser()
        if not source.exists():
            raise FileNotFoundError(f"{spec}: {source} does not exist")
        if kind == "folder":
            parts = {p: source / p for p in ("train", "val", "test") if (source / p).is_dir()}
            size = (image_size, image_size) if isinstance(image_size, int) else image_size
            if "train" in parts:
                train = read_image_folder(parts["train"], mode=mode, size=size, strict=strict)
                kw = dict(classes=train.classes, mode=channels_mode(train.images.shape[1]),
                          size=tuple(train.images.shape[2:]), strict=strict)  # fmt: skip
                test = read_image_folder(parts["test"], **kw) if "test" in parts else None
                val = read_image_folder(parts["val"], **kw) if "val" in parts else None
            else:
                train, test = read_image_folder(source, mode=mode, size=size, strict=strict), None
        elif kind == "npz":
            train, test = read_npz(source)
        elif kind == "csv":
            files = sorted(source.glob("*.csv")) if source.is_dir() else [source]
            train_f = [f for f in files if "test" not in f.name.lower()]
            test_f = [f for f in files if "test" in f.name.lower()]
            if not train_f:
                raise ValueError(f"{spec}: no training CSV (a file without 'test' in its name)")
            train = read_csv(train_f[0])
            test = read_csv(test_f[0]) if test_f else None
        else:
            raise ValueError(f"unknown data source '{kind}:'; use folder:PATH, npz:PATH or csv:PATH")
        name, where = spec, str(source)
    else:
        ds = get_spec(spec)
        folder = locate(spec, data_dir)
        if folder is None:
            if not allow_download or os.environ.get("CNNLAB_OFFLINE"):
                raise DatasetNotFound(how_to_get(ds, data_dir))
            folder = download(spec)
        train, test = ds.read(folder)
        name, where = spec, str(folder)

    if val is None:
        train, val = split_off(train, _default_val(val_split, len(train)), seed)
    splits = [s for s in (train, val, test) if s is not None]
    if mode is not None:
        want = 1 if mode == "L" else 3
        for s in splits:
            if s.images.shape[1] != want:
                notes.append(f"converted {s.images.shape[1]}-channel images to mode {mode}")
                s.images = _convert_channels(s.images, want)
    if image_size is not None:
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if tuple(train.images.shape[2:]) != size:
            notes.append(f"resized {train.images.shape[3]}×{train.images.shape[2]} images to {size[1]}×{size[0]}")
        train, val, test = (s.resized(size) if s is not None else None for s in (train, val, test))
    return DataSplits(name, train, val, test, train.classes, where, notes)


def _convert_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    if channels == 3:
        return images.expand(-1, 3, -1, -1).contiguous()
    # ITU-R 601-2 luma, as PIL's convert("L")
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (images.float() * weights).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
