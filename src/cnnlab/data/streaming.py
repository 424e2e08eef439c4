"""folder:PATH sets too large for memory: images decoded from disk batch by batch by DataLoader workers.

`StreamingFolderLoader` implements the `BatchLoader` protocol with the same order as `InMemoryLoader` (the same
seeded permutation, the same shard of each global batch in a distributed run) and the same uint8 batches: the
workers decode with pillow exactly as `read_image_folder` does, the batch moves to the device, and the same
batched transform (Normalize, augmentation) runs there. Its state is the order's generator, so a resume replays
the epoch. `FileSet` is the training split: the file list plus a decoded sample (statistics, probes); it has a real
`subset` (the first N files, the validation carve-out) but is not an ImageSet.

The file system can change under a long run. Files that cannot be opened when the folder is listed (empty, not an
image) are skipped with the same warning as an in-memory read (or refused with --strict). A file deleted,
truncated or replaced after that (its size or modification time changed) is never decoded as if nothing
happened: the epoch ends with one `StreamError` naming the file, raised in the training process (a worker's
traceback never reaches the user), and the run keeps its last checkpoint for `--resume`.
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
from cnnlab.data.folder import class_folders, decode, image_files, read_image_folder, report_unreadable
from cnnlab.data.images import IMAGE_SUFFIXES, ImageReadError, base_mode, check_header, open_image
from cnnlab.data.load import _default_val
from cnnlab.data.loader import ShardedBatches

STREAM_ABOVE_BYTES = 2 * 1024**3  # decoded uint8 size above which folder:PATH streams on its own
SAMPLE = 1024  # images decoded up front: channel statistics, colour mode, thread and time probes
SAMPLE_SEED_OFFSET = 1  # the sample's stream: independent of the validation split's (see file_set)


class StreamError(ImageReadError):
    """A file of a streamed folder that changed, vanished or stopped being readable while the run read it."""


def file_stat(path: Path) -> tuple[int, int]:
    """(size in bytes, modification time in ns): what tells a file replaced or truncated since it was listed."""
    st = path.stat()
    return st.st_size, st.st_mtime_ns


class DecodeDataset(Dataset):
    """files[i] → (uint8 (C, H, W), label), decoded with pillow in `mode` and resized to `size` (H, W).

    stats: each file's `file_stat` when it was listed; a file whose stat differs now is a StreamError."""

    def __init__(
        self,
        files: list[Path],
        labels: list[int],
        mode: str,
        size: tuple[int, int],
        stats: list[tuple[int, int]] | None = None,
    ) -> None:
        self.files, self.labels, self.mode, self.size = files, labels, mode, tuple(size)
        self.stats = stats

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path = self.files[i]
        if self.stats is not None:
            try:
                now = file_stat(path)
            except FileNotFoundError:
                raise StreamError(f"{path}: deleted while the run was reading the folder") from None
            if now != self.stats[i]:
                raise StreamError(f"{path}: changed (replaced or truncated) since the run listed the folder")
        return decode(path, self.mode, self.size), self.labels[i]


class _Guarded(Dataset):
    """A DecodeDataset whose items carry their error instead of raising it in a DataLoader worker: (image or None,
    label, error message or None). The training process raises it, as one line."""

    def __init__(self, data: DecodeDataset) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[torch.Tensor | None, int, str | None]:
        try:
            image, label = self.data[i]
        except (ImageReadError, OSError) as e:
            return None, self.data.labels[i], str(e).splitlines()[0] if str(e) else type(e).__name__
        return image, label, None


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
        stats: list[tuple[int, int]] | None = None,
    ) -> None:
        self.files, self.file_labels, self.classes = files, labels, classes
        self.mode, self.size = mode, tuple(size)
        self.sample = sample
        self.sample_index = sample_index  # file index of each sample image
        self.stats = stats  # each file's (size, mtime) when listed: a change mid-run is a StreamError

    def __len__(self) -> int:
        return len(self.files)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.sample.images.shape[1:])  # type: ignore[return-value]

    def dataset(self) -> DecodeDataset:
        return DecodeDataset(self.files, self.file_labels, self.mode, self.size, self.stats)

    def subset(self, index: slice | torch.Tensor | list[int], seed: int = 0) -> FileSet:
        """The files at `index` (a slice, or file indices in order) as a FileSet. Its sample is the part of this
        one's sample that falls in the subset while that is at least a quarter of a full sample; otherwise a new
        seeded sample of the subset is decoded (all of it when it has no more than `SAMPLE` files)."""
        keep = list(range(len(self.files)))[index] if isinstance(index, slice) else [int(i) for i in index]
        files, labels = [self.files[i] for i in keep], [self.file_labels[i] for i in keep]
        stats = [self.stats[i] for i in keep] if self.stats is not None else None
        position = {i: j for j, i in enumerate(keep)}
        mine = [j for j, i in enumerate(self.sample_index) if i in position]
        if len(mine) >= min(SAMPLE // 4, len(keep)):
            sample = self.sample.subset(torch.tensor(mine, dtype=torch.int64))
            index = [position[self.sample_index[j]] for j in mine]
            return FileSet(files, labels, self.classes, self.mode, self.size, sample, index, stats)
        return _with_sample(files, labels, self.classes, self.mode, self.size, seed, stats)


def decoded(data: ImageSet | FileSet) -> ImageSet:
    """The images of a training split that are held in memory: all of an ImageSet, the decoded sample of a
    FileSet (for statistics and probes)."""
    return data.sample if isinstance(data, FileSet) else data


def _with_sample(
    files: list[Path], labels: list[int], classes: list[str], mode: str, size, seed: int, stats=None
) -> FileSet:
    """A FileSet whose sample is `SAMPLE` files of a seeded shuffle (all of them when there are fewer)."""
    g = torch.Generator().manual_seed(seed + SAMPLE_SEED_OFFSET)
    pick = torch.randperm(len(files), generator=g)[:SAMPLE].tolist()
    data = DecodeDataset([files[i] for i in pick], [labels[i] for i in pick], mode, size)
    sample = ImageSet(torch.stack([data[i][0] for i in range(len(data))]), torch.tensor(data.labels), classes)
    return FileSet(files, labels, classes, mode, size, sample, pick, stats)


def folder_files(root: Path, classes: list[str] | None = None) -> tuple[list[Path], list[int], list[str]]:
    """The image files (by suffix) under root/<class>/ and their labels; nothing is decoded."""
    classes = classes or class_folders(root)
    if not classes:
        raise ValueError(f"{root}: no class sub-folders (expected {root}/<class>/<image files>)")
    pairs = [(p, i) for p, i in image_files(root, classes) if p.suffix.lower() in IMAGE_SUFFIXES]
    if not pairs:
        raise ValueError(f"{root}: no image files in {len(classes)} class folder(s)")
    return [p for p, _ in pairs], [i for _, i in pairs], classes


def readable_files(
    root: Path, classes: list[str] | None, strict: bool
) -> tuple[list[Path], list[int], list[str], list[tuple[int, int]]]:
    """The files of root/<class>/ that open as images (their header is read, nothing decoded), their labels, the
    classes and each file's `file_stat`. The others are skipped with the warning `read_image_folder` gives (an
    error with `strict`): an empty file, a file that is not an image."""
    classes = classes or class_folders(root)
    if not classes:
        raise ValueError(f"{root}: no class sub-folders (expected {root}/<class>/<image files>)")
    files, labels, stats, bad = [], [], [], []
    for path, label in image_files(root, classes):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            bad.append(f"{path} (not an image file type)")
            continue
        try:
            stat = file_stat(path)
            check_header(path)
        except (ImageReadError, OSError) as e:
            bad.append(str(e) if isinstance(e, ImageReadError) else f"{path}: {e.strerror or e}")
            continue
        files.append(path)
        labels.append(label)
        stats.append(stat)
    report_unreadable(root, bad, strict)
    if not files:
        raise ValueError(f"{root}: no readable images in {len(classes)} class folder(s)")
    return files, labels, classes, stats


def decoded_bytes(root: Path, image_size: int | tuple[int, int] | None, mode: str | None) -> int:
    """Estimated uint8 size of the whole folder in memory (file count × one image's decoded size)."""
    files, _, _ = folder_files(root)
    with Image.open(files[0]) as im:
        w, h = im.size
        channels = 1 if (mode or base_mode(im)) == "L" else 3
    if image_size is not None:
        h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    return len(files) * channels * h * w


def file_set(
    root: Path, mode: str | None, size, seed: int, classes: list[str] | None = None, strict: bool = False
) -> FileSet:
    """The FileSet of root/<class>/ (its readable files, see `readable_files`): mode (majority of the sample when
    None) and size (the sample's single size when None, else an error asking for --image-size) are fixed from the
    files of a seeded sample."""
    files, labels, classes, stats = readable_files(root, classes, strict)
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
                    f"{root}: images have {len(sizes)} different sizes; resize them all to one with --image-size "
                    "(train, lr-find)"
                )
            size = next(iter(sizes))
    size = (size, size) if isinstance(size, int) else tuple(size)
    return _with_sample(files, labels, classes, mode, size, seed, stats)


def _collate(items: list[tuple]) -> tuple[torch.Tensor | None, torch.Tensor | None, str | None]:
    """A batch (x, y, None), or (None, None, the first error) when a file of it could not be read."""
    error = next((e for _, _, e in items if e is not None), None)
    if error is not None:
        return None, None, error
    return torch.stack([x for x, _, _ in items]), torch.tensor([y for _, y, _ in items], dtype=torch.int64), None


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
            _Guarded(self.dataset),
            batch_sampler=plan,
            num_workers=self.workers,
            collate_fn=_collate,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
            prefetch_factor=4 if self.workers else None,
        )
        for x, y, error in loader:
            if error is not None:
                raise StreamError(error)
            yield self._finish(x.to(self.device, non_blocking=True)), y.to(self.device, non_blocking=True)
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
    train = file_set(train_root, mode, image_size, seed, strict=strict)
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
