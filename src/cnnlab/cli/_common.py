"""What the verb modules share: a parser whose flags are added on first use, and notes on stderr."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable
from pathlib import Path


def status(line: str) -> None:
    """A line saying what a verb is doing now, before a step that takes a while: on stderr, so that stdout stays the
    verb's result (machine-readable where it is, e.g. --json)."""
    print(line, file=sys.stderr, flush=True)


class VerbParser(argparse.ArgumentParser):
    """A verb's parser; `populate(parser)` adds its flags when it is first used (parsing, help, usage), so that
    building the whole CLI does not import what one verb's flags come from (TrainConfig pulls in torch)."""

    def __init__(self, *args, populate: Callable[[argparse.ArgumentParser], None] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._populate = populate

    def _ensure_flags(self) -> None:
        populate, self._populate = self._populate, None
        if populate is not None:
            populate(self)

    def parse_known_args(self, args=None, namespace=None):
        self._ensure_flags()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._ensure_flags()
        return super().format_help()

    def format_usage(self) -> str:
        self._ensure_flags()
        return super().format_usage()


def check_out(
    out: str | Path,
    run: str | Path | None = None,
    meta=None,
    data: str | None = None,
    data_dir: str | None = None,
    files: tuple = (),
    flag: str = "--out",
    folder: bool = False,
) -> Path:
    """`out` checked against everything the verb reads (`cnnlab.files.check_output`): the run folder or model file
    `run` (new files may go into a run folder, never over its own), the data (`data` / `data_dir`, else the run's
    own recorded data in `meta`) and input `files`. A folder output (`folder`) that only adds files is checked as a
    place: never a data folder or inside one."""
    from cnnlab.data.load import data_reads
    from cnnlab.files import Read, check_output
    from cnnlab.run.folder import run_reads

    reads = run_reads(run) if run is not None else []
    record = getattr(meta, "data", None)
    if data is None and record is not None:
        data, data_dir = record.source, data_dir or record.data_dir
    reads += data_reads(data, data_dir)
    reads += [Read(f, "an input file") for f in files if f is not None]
    return check_output(out, reads, flag, folder=folder)


def print_notes(notes: Iterable[str]) -> None:
    """What the library changed about an input (converted, resized, …), one line each on stderr."""
    for note in notes:
        print(f"note: {note}", file=sys.stderr)


def count(text: str) -> int:
    """argparse `type=` for a count that must be ≥ 1 (--top, --classes, --n): 0 or −1 is refused with the range."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 1, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be ≥ 1, got {value}")
    return value


count.__name__ = "count"


def val_split(text: str) -> int | float:
    """argparse `type=` for --val-split: a count of images (≥ 0) or a fraction in (0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count of images or a fraction in (0, 1), got '{text}'") from None
    if value < 0 or (value >= 1 and not value.is_integer()):
        raise argparse.ArgumentTypeError(f"expected a count of images or a fraction in (0, 1), got '{text}'")
    return int(value) if value.is_integer() else value


val_split.__name__ = "val_split"


def add_threads_flag(p: argparse.ArgumentParser) -> None:
    """--threads: torch's (and ONNX Runtime's) CPU threads; by default measured on this machine (`use_threads`)."""
    p.add_argument(
        "--threads",
        type=count,
        default=None,
        help="CPU threads (default: $CNNLAB_THREADS, else measured at start: one per core, fewer on a busy machine)",
    )


def use_threads(args: argparse.Namespace) -> int:
    """Set the CPU thread count of a verb that runs a model: --threads, $CNNLAB_THREADS, else the measured choice
    (`runtime.choose_threads`, reused for minutes across commands). Returns the count."""
    from cnnlab.runtime import choose_threads

    return choose_threads(asked=getattr(args, "threads", None)).threads


def add_run_data_flags(p: argparse.ArgumentParser, split_help: str | None = None, resplit: bool = True) -> None:
    """The flags of a verb that reopens a run's data: by default exactly as the run trained on them.

    resplit: also --val-split and --seed, to carve another validation split than the run's."""
    p.add_argument("--data", help="dataset (default: the one the run was trained on)")
    p.add_argument("--data-dir", help="folder holding the dataset's files (searched first; default: the run's)")
    if split_help:
        p.add_argument("--split", choices=("train", "val", "test"), default="test", help=split_help)
    if not resplit:
        return
    p.add_argument(
        "--val-split",
        type=val_split,
        default=None,
        help="validation samples carved from train, a count or a fraction (default: the run's own split)",
    )
    p.add_argument(
        "--seed",
        dest="split_seed",
        type=int,
        default=None,
        help="seed of the validation split (default: the run's own)",
    )
    p.add_argument(
        "--strict", action="store_true", help="fail on unreadable image files instead of skipping them with a warning"
    )


def open_run_data(args: argparse.Namespace, meta, split: str | None = None):
    """The data of the run `args.run` (whose metadata is `meta`) as it was trained (`run_splits`), or the data /
    validation split / seed the flags ask for; each difference from the run's own is said on stderr."""
    from cnnlab.run.splits import run_splits

    data = run_splits(
        meta,
        where=args.run,
        data=args.data,
        data_dir=args.data_dir,
        val_split=getattr(args, "val_split", None),
        seed=getattr(args, "split_seed", None),
        strict=getattr(args, "strict", False) or None,
    )
    print_notes(data.notes(split or getattr(args, "split", None)))
    return data


def classification_only(meta, verb: str) -> None:
    """Refuse a model of another task than classification in a verb that does not know tasks yet, in one line."""
    if meta.task != "classify":
        raise ValueError(
            f"cnnlab {verb} works on classification models; this is a {meta.task} model "
            "(evaluate, predict, summary, export, bench and explain know its task)"
        )
