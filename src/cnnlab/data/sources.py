"""Datasets by name: where their official files are found, how they are fetched, and how they are read.

Search order for a named dataset (first hit wins): --data-dir, $CNNLAB_DATA, the user cache, the system path of a
distribution package, and finally a download from the official address, verified by checksum.

The work is split over four modules, all re-exported here:

- `catalog`: the named datasets (`DATASETS`, `DatasetSpec`, `get_spec`): files, classes, download addresses;
- `fetch`: locating their files (`search_path`, `cache_dir`, `locate`), `download` with checksum, `get`;
- `official`: reading the official formats (IDX pairs, CIFAR-10 binaries) into train and test sets;
- `load`: `load_dataset`, which assembles the splits from a name or a folder:/npz:/csv: source.
"""

from cnnlab.data.catalog import DATASETS, FASHION_CLASSES, DatasetSpec, get_spec
from cnnlab.data.fetch import DatasetNotFound, cache_dir, download, get, how_to_get, locate, search_path
from cnnlab.data.load import load_dataset
from cnnlab.data.official import find_file, idx_reader, read_cifar10

__all__ = [
    "DATASETS",
    "FASHION_CLASSES",
    "DatasetNotFound",
    "DatasetSpec",
    "cache_dir",
    "download",
    "find_file",
    "get",
    "get_spec",
    "how_to_get",
    "idx_reader",
    "load_dataset",
    "locate",
    "read_cifar10",
    "search_path",
]
