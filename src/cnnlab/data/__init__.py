"""Data: sources → in-memory uint8 tensors → batched transforms → loaders."""

from cnnlab.data.catalog import DATASETS
from cnnlab.data.dataset import DataSplits, ImageSet, channel_stats
from cnnlab.data.fetch import DatasetNotFound
from cnnlab.data.images import load_image
from cnnlab.data.load import load_dataset
from cnnlab.data.loader import InMemoryLoader
from cnnlab.data.transforms import Compose, Normalize

__all__ = [
    "DATASETS",
    "Compose",
    "DataSplits",
    "DatasetNotFound",
    "ImageSet",
    "InMemoryLoader",
    "Normalize",
    "channel_stats",
    "load_dataset",
    "load_image",
]
