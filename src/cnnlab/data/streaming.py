"""folder:PATH sets too large for memory: images decoded from disk batch by batch by DataLoader workers.

`StreamingFolderLoader` implements the `BatchLoader` protocol with the same order as `InMemoryLoader` (the same
seeded permutation, the same shard of each global batch in a distributed run) and the same uint8 batches: the
workers decode with pillow exactly as `read_image_folder` does, the batch moves to the device, and the same
batched transform (Normalize, augmentation) runs there. Its state is the order's generator, so a resume replays
the epoch. `FileSet` is the training split: the file list plus a decoded sample (statistics, probes); it has a real
`subset` (the first N files, the validation carve-out) but is not an ImageSet.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from cnnlab.data.dataset import DataSplits, ImageSet
from cnnlab.data.folder import class_folders, decode, image_files, read_image_folder
from cnnlab.data.images import IMAGE_SUFFIXES, ImageReadError, base_mode, open_image
from cnnlab.data.load import _default_val
from cnnlab.data.loader import ShardedBatches

STREAM_ABOVE_BYTES = 2 * 1024**3  # decoded uint8 size above which folder:PATH streams on its own
SAMPLE = 1024  # images decoded up front: channel statistics, colour mode, thread and time probes
SAMPLE_SEED_OFFSET = 1  # the sample's stream: independent of the validation split's (see file_set)


class DecodeDataset(Dataset):
    """files[i] → (uint8 (C, H, W), label), decoded with pillow in `mode` and resized to `size` (H, W)."""

    def __init__(self, files: list[Path], labels: list[int], mode: str, size: tuple[int, int]) -> None:
        self.files, self.labels, self.mode, self.size = files, labels, mode, tuple(size)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return decode(self.files[i], self.mode, self.size), self.labels[i]


class FileSet:
    """The training split of a streamed folder: its files and labels (nothing decoded), and `sample`, a decoded
    `ImageSet` of up to `SAMPLE` of them (a seeded draw), for what needs pixels up front (channel statistics, the
    thread and time probes, int8 calibration). It is not an ImageSet: `len()` counts files, and its images are read
    batch by batch by `StreamingFolderLoader`."""

    def __init__(
        self,
        files: list[Path],
        labels: list[int],
        classes: list[str],
        mode: str,
        size,
        sample: ImageSet,
        sample_index: list[int],
    ) -> None:
        self.files, self.file_labels, self.classes = files, labels, classes
        self.mode, self.size = mode, tuple(size)
        self.sample = sample
        self.sample_index = sample_index  # file index of each sample image

    def __len__(self) -> int:
        return len(self.files)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.sample.images.shape[1:])  # type: ignore[return-value]

    def dataset(self) -> DecodeDataset:
        return DecodeDataset(self.files, self.file_labels, self.mode, self.size)

    def subset(self, index: slice | torch.Tensor | list[int], seed: int = 0) -> FileSet:
        """The files at `index` (a slice, or file indices in order) as a FileSet. Its sample is the part of this
        one's sample that falls in the subset while that is at least a quarter of a full sample; otherwise a new
        seeded sample of the subset is decoded (all of it when it has no more than `SAMPLE` files)."""
        keep = list(range(len(self.files)))[index] if isinstance(index, slice) else [int(i) for i in index]
        files, labels = [self.files[i] for i in keep], [self.file_labels[i] for i in keep]
        position = {i: j for j, i in enumerate(keep)}
        mine = [j for j, i in enumerate(self.sample_index) if i in position]
        if len(mine) >= min(SAMPLE // 4, len(keep)):
            sample = self.sample.subset(torch.tensor(mine, dtype=torch.int64))
            return FileSet(
                files,
                labels,
                self.classes,
                self.mode,
                self.size,
                sample,
                [position[self.sample_index[j]] for j in mine],
            )
        return _with_sample(files, labels, self.classes, self.mode, self.size, seed)


def decoded(data: ImageSet | FileSet) -> ImageSet:
    """The images of a training split that are held in memory: all of an ImageSet, the decoded sample of a
    FileSet (for statistics and probes)."""
    return data.sample if isinstance(data, FileSet) else data


def _with_sample(files: list[Path], labels: list[int], classes: list[str], mode: str, size, seed: int) -> FileSet:
    """A FileSet whose sample is `SAMPLE` files of a seeded shuffle (all of them when there are fewer)."""
    g = torch.Generator().manual_seed(seed + SAMPLE_SEED_OFFSET)
    pick = torch.randperm(len(files), generator=g)[:SAMPLE].tolist()
    data = DecodeDataset([files[i] for i in pick], [labels[i] for i in pick], mode, size)
    sample = ImageSet(torch.stack([data[i][0] for i in range(len(data))]), torch.tensor(data.labels), classes)
    return FileSet(files, labels, classes, mode, size, sample, pick)


def folder_files(root: Path, classes: list[str] | None = None) -> tuple[list[Path], list[int], list[str]]:
    """The image files (by suffix) under root/<class>/ and their labels; nothing is decoded."""
    classes = classes or class_folders(root)
    if not classes:
        raise ValueError(f"{root}: no class sub-folders (expected {root}/<class>/<image files>)")
    pairs = [(p, i) for p, i in image_files(root, classes) if p.suffix.lower() in IMAGE_SUFFIXES]
    if not pairs:
        raise ValueError(f"{root}: no image files in {len(classes)} class folder(s)")
    return [p for p, _ in pairs], [i for _, i in pairs], classes


def decoded_bytes(root: Path, image_size: int | tuple[int, int] | None, mode: str | None) -> int:
    """Estimated uint8 size of the whole folder in memory (file count × one image's decoded size)."""
    files, _, _ = folder_files(root)
    with Image.open(files[0]) as im:
        w, h = im.size
        channels = 1 if (mode or base_mode(im)) == "L" else 3
    if image_size is not None:
        h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    return len(files) * channels * h * w


def file_set(root: Path, mode: str | None, size, seed: int, classes: list[str] | None = None) -> FileSet:
    """The FileSet of root/<class>/: mode (majority of the sample when None) and size (the sample's single size
    when None, else an error asking for --image-size) are fixed from the files of a seeded sample."""
    files, labels, classes = folder_files(root, classes)
    if mode is None or size is None:
        # not `seed` itself: load_streaming holds out the first files of randperm(seed) for validation, and a sample
        # drawn from the same permutation would lie wholly in the held-out files
        g = torch.Generator().manual_seed(seed + SAMPLE_SEED_OFFSET)
        pics = [open_image(files[i]) for i in torch.randperm(len(files), generator=g)[:SAMPLE].tolist()]
        mode = mode or Counter(base_mode(im) for im in pics).most_common(1)[0][0]
        if size is None:
            sizes = Counter((im.height, im.width) for im in pics)
            if len(sizes) > 1:
                raise ValueError(
                    f"{root}: images have {len(sizes)} different sizes; pass --image-size to resize them all"
                )
            size = next(iter(sizes))
    size = (size, size) if isinstance(size, int) else tuple(size)
    return _with_sample(files, labels, classes, mode, size, seed)


def _collate(items: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items], dtype=torch.int64)


def default_workers() -> int:
    return max(1, min(4, (os.cpu_count() or 1) - 1))


class StreamingFolderLoader(ShardedBatches):
    """(x, y) batches of a FileSet decoded by `workers` DataLoader processes (0: in this process).

    The same order, shards, on-device finish and resume state as `InMemoryLoader` (both are `ShardedBatches`), so
    the Trainer, augmentation and resume work unchanged.
    """

    def __init__(
        self,
        data: FileSet | DecodeDataset,
        batch_size: int,
        shuffle: bool = False,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        device: torch.device | str = "cpu",
        seed: int = 0,
        drop_last: bool = False,
        channels_last: bool = False,
        rank: int = 0,
        world: int = 1,
        workers: int | None = None,
    ) -> None:
        self.dataset = data.dataset() if isinstance(data, FileSet) else data
        super().__init__(len(self.dataset), batch_size, shuffle, transform, seed, drop_last, channels_last, rank, world)
        self.classes = getattr(data, "classes", None)
        self.device = torch.device(device)
        self.workers = default_workers() if workers is None else workers

    def batches(self, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch's batches from batch `start` on, in the order `InMemoryLoader` would draw."""
        order, bounds = self._epoch(start)
        order = torch.arange(self.n) if order is None else order
        plan = [order[a:b].tolist() for a, b in bounds]
        loader = DataLoader(
            self.dataset,
            batch_sampler=plan,
            num_workers=self.workers,
            collate_fn=_collate,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
            prefetch_factor=4 if self.workers else None,
        )
        try:
            for x, y in loader:
                yield self._finish(x.to(self.device, non_blocking=True)), y.to(self.device, non_blocking=True)
        except ImageReadError as e:
            raise ImageReadError(f"while streaming: {e}") from None
        self._epoch_done()


def load_streaming(
    spec: str, val_split: float | int | None, seed: int, mode: str | None, image_size, strict: bool = False
) -> DataSplits:
    """DataSplits of a folder:PATH source whose training split streams (a FileSet); the validation split (carved
    from train with `split_off`'s seeded permutation, or val/) and test/ are decoded into memory."""
    kind, _, path = spec.partition(":")
    if kind != "folder" or not path:
        raise ValueError(f"--stream reads folder:PATH data, not '{spec}'")
    root = Path(path).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{spec}: {root} is not a folder")
    parts = {p: root / p for p in ("train", "val", "test") if (root / p).is_dir()}
    train_root = parts.get("train", root)
    train = file_set(train_root, mode, image_size, seed)
    kw = dict(classes=train.classes, mode=train.mode, size=train.size, strict=strict)
    test = read_image_folder(parts["test"], **kw) if "test" in parts else None
    val = read_image_folder(parts["val"], **kw) if "val" in parts else None
    if val is None:
        n = _default_val(val_split, len(train))
        if n >= len(train):
            raise ValueError(f"validation split of {n} leaves no training data (the set has {len(train)} samples)")
        if n > 0:  # split_off's seeded permutation, as for a folder read into memory
            perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
            held = perm[:n].sort().values.tolist()
            data = train.dataset()
            val = ImageSet(
                torch.stack([data[i][0] for i in held]), torch.tensor([data.labels[i] for i in held]), train.classes
            )
            # the training files only; the sample's statistics are then those of the training split, as in memory
            train = train.subset(perm[n:].sort().values, seed)
    note = f"streaming {len(train):,} training images from {train_root} (decoded by DataLoader workers)"
    return DataSplits(spec, train, val, test, train.classes, str(root), [note])  # type: ignore[arg-type]


def should_stream(spec: str, image_size, mode: str | None) -> bool:
    """folder:PATH whose decoded training images would take more than STREAM_ABOVE_BYTES of memory."""
    kind, _, path = spec.partition(":")
    if kind != "folder" or not path or not Path(path).expanduser().is_dir():
        return False
    root = Path(path).expanduser()
    root = root / "train" if (root / "train").is_dir() else root
    try:
        return decoded_bytes(root, image_size, mode) > STREAM_ABOVE_BYTES
    except (ValueError, OSError):
        return False  # the in-memory reader gives the clear error
