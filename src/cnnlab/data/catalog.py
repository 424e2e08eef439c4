"""The named datasets: what each one's official files are, where they are downloaded from, how they are read."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cnnlab.data import cifar
from cnnlab.data.dataset import ImageSet
from cnnlab.data.official import find_file, idx_reader, read_cifar10


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
            if cand.is_dir() and all(find_file(cand, f) for f in self.files):
                return cand
        return None


_IDX_FILES = tuple(f"{s}-{k}-idx{d}-ubyte" for s in ("train", "t10k") for k, d in (("images", 3), ("labels", 1)))
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
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
            idx_reader(FASHION_CLASSES),
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
            idx_reader(tuple(str(i) for i in range(10))),
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
            read_cifar10,
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


def get_spec(name: str) -> DatasetSpec:
    """The spec of dataset `name`; a ValueError listing the known names otherwise."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset '{name}'; known: {', '.join(DATASETS)}, or folder:PATH, npz:PATH, csv:PATH")
    return DATASETS[name]
