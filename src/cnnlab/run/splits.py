"""A run's data, read exactly as it was trained: the one way every verb reopens them.

Training reads its data with `load_splits(record, mode, size)`, where `record` (a `DataRecord`, kept in the model
file's metadata) says which source, data folder, validation split, seed, training-image cap and streaming the run
used. `run_splits` reads the same record back from a run folder, model file or exported file and calls the same
function with the model's input mode and size: `cnnlab evaluate RUN --split val` is the run's own validation split,
never one rebuilt from a verb's defaults. Other data, or another validation split or seed, are used only when the
caller asks for them, and each difference is said in one line (`RunData.differs`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from cnnlab.data import DataSplits, ImageSet, load_dataset
from cnnlab.data.streaming import load_streaming, should_stream
from cnnlab.data.targets import relabel
from cnnlab.io import DataRecord, RunMeta, read_meta
from cnnlab.train.config import TrainConfig


def data_record(cfg: TrainConfig) -> DataRecord:
    """How `cfg` reads and splits its data, with file paths made absolute (the record outlives the working folder)."""
    kind, sep, path = cfg.data.partition(":")
    source = f"{kind}:{Path(path).expanduser().resolve()}" if sep and path else cfg.data
    data_dir = str(Path(cfg.data_dir).expanduser().resolve()) if cfg.data_dir else None
    return DataRecord(source, data_dir, cfg.val_split, cfg.seed, cfg.max_train_samples, cfg.stream, cfg.strict)


def load_splits(
    record: DataRecord,
    mode: str | None = None,
    image_size: int | tuple[int, int] | None = None,
    allow_download: bool = True,
    target: str = "label",
) -> DataSplits:
    """The splits `record` describes, converted to `mode` and resized to `image_size` (None: as the data are),
    their targets of kind `target` (the task's: label, box, …).

    A folder streams (its training split a `FileSet`) when the record says so or when it is too big for memory;
    `max_train_samples` keeps the first N training images, as the run trained on them.
    """
    if target == "label" and (record.stream or should_stream(record.source, image_size, mode)):
        splits = load_streaming(record.source, record.val_split, record.seed, mode, image_size, record.strict)
    else:
        splits = load_dataset(
            record.source,
            record.data_dir,
            record.val_split,
            record.seed,
            mode,
            image_size,
            record.strict,
            allow_download,
            target,
        )
    n = record.max_train_samples
    if n is not None and n < len(splits.train):
        splits.train = splits.train.subset(slice(0, n))
        splits.notes.append(f"training on the first {n:,} training images (max_train_samples)")
    return splits


@dataclass
class RunData:
    """A run's data reopened: the splits, the record they were read by, and how they differ from the run's own."""

    splits: DataSplits
    record: DataRecord
    differs: list[str] = field(default_factory=list)  # other data than the run's: true of every split
    split_differs: list[str] = field(default_factory=list)  # another validation split: true of train and val

    def notes(self, split: str | None = None) -> list[str]:
        """What the caller should say about reading `split` (None: every split): one line per difference."""
        return self.differs + (self.split_differs if split in (None, "train", "val") else [])

    def split(self, name: str) -> ImageSet:
        data = self.splits.split(name)
        if not isinstance(data, ImageSet):
            raise ValueError(
                f"the {name} split of {self.splits.name} streams from disk and is not held in memory; "
                "use the val or test split"
            )
        return data


def run_record(meta: RunMeta, where: str | Path | None = None) -> tuple[DataRecord | None, str | None]:
    """The data record of a model: its metadata's, else the config.json of its run folder (files written before the
    record existed), else None. Also returns a note when the split settings had to be guessed."""
    if meta.data is not None:
        return meta.data, None
    folders = [Path(p) for p in (where, meta.export.source_run if meta.export else None) if p]
    for folder in folders:
        folder = folder if folder.is_dir() else folder.parent
        try:
            cfg = TrainConfig.from_dict(json.loads((folder / "config.json").read_text()))
        except (OSError, ValueError, TypeError):
            continue
        return data_record(cfg), None
    if meta.dataset:
        note = "the model file does not record how its data were split; the validation split and seed are the defaults"
        return DataRecord(meta.dataset), note
    return None, None


def run_splits(
    run: str | Path | RunMeta,
    *,
    where: str | Path | None = None,
    data: str | None = None,
    data_dir: str | None = None,
    val_split: int | float | None = None,
    seed: int | None = None,
    strict: bool | None = None,
    allow_download: bool = True,
) -> RunData:
    """The data of `run` (a run folder, a model file, or the `RunMeta` of an exported file) exactly as it was
    trained — source, validation split, seed, training-image cap, streaming — in the model's input mode and size.

    data / val_split / seed: use other data or another split instead; each difference is one line in
    `RunData.differs` (the caller says it). data_dir / strict: where to look for the files, how to treat unreadable
    ones (no difference in what is read). where: the file `run`'s metadata came from (its run folder's config.json
    describes the data of files written before the metadata did). The classes are put in the model's order when
    the data name the same classes in another order.
    """
    meta = run if isinstance(run, RunMeta) else read_meta(run)
    record, guessed = run_record(meta, where if isinstance(run, RunMeta) else run)
    if record is None and data is None:
        raise ValueError(f"{meta.model}: the model does not record its data set; give it with --data")
    own = record or DataRecord(data or "")
    same = data is None  # the run's own data: its split settings hold unless asked otherwise; other data: defaults
    asked = DataRecord(
        data or own.source,
        data_dir or (own.data_dir if same else None),
        val_split if val_split is not None else (own.val_split if same else None),
        seed if seed is not None else (own.seed if same else 0),
        own.max_train_samples if same else None,
        own.stream if same else False,
        own.strict if strict is None else strict,
    )
    target = meta.make_task().target
    out = RunData(load_splits(asked, meta.mode, meta.input_size[1:], allow_download, target), asked)
    if record is not None and asked.source != record.source:
        out.differs.append(f"data {asked.source}, not the data the run trained on ({record.source})")
    elif record is not None and (asked.val_split, asked.seed) != (record.val_split, record.seed):
        out.split_differs.append(
            f"validation split {_split_text(asked)}, not the run's own {_split_text(record)}: its val and train "
            "splits are not the ones the run validated and trained on"
        )
    if guessed and (val_split is None or seed is None):
        out.split_differs.append(guessed)
    _in_model_order(out.splits, list(meta.classes))
    return out


def _split_text(record: DataRecord) -> str:
    size = "the default size" if record.val_split is None else f"{record.val_split:,}"
    return f"{size} (seed {record.seed})"


def _in_model_order(splits: DataSplits, classes: list[str]) -> None:
    """Relabel every split to the model's class order when the data name the same classes in another order."""
    if splits.classes == classes or sorted(splits.classes) != sorted(classes):
        return
    to_model = torch.tensor([classes.index(c) for c in splits.classes])
    for name in ("train", "val", "test"):
        part = getattr(splits, name)
        if isinstance(part, ImageSet):
            labels = relabel(part.kind, part.labels, to_model)  # a box's or a pixel's class as well as a label
            setattr(splits, name, dataclasses.replace(part, labels=labels, classes=classes))
    splits.classes = classes
    splits.notes.append("classes put in the model's order")
