"""The run folder: where a run writes, agreed by every rank, and what becomes of it when the run ends.

A new run's folder is checked before any data are read, so a start that fails leaves nothing behind. It is created
when training starts (`RunFolder.lifecycle`). With `--overwrite` an existing folder is moved aside
(`.NAME.replaced-PID`) and removed only once the new run has trained; a run that fails or is interrupted before its
first step puts it back whole. Only rank 0 touches the disk.

A resumed run reopens its folder: the checkpoint must belong to the same model and data, and only the settings in
`RESUME_MAY_CHANGE` may differ from its config.json.

What is a cnnlab run folder (`run_folder_problem`): a folder whose `config.json` is a run's (a JSON object with
`model` and `data`) and which holds nothing but what cnnlab writes into a run folder (`written_by_cnnlab`).
`--overwrite` replaces only such a folder: never a data folder, a parent of the data, the working folder or a
folder with files of the user's own.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from fnmatch import fnmatch
from pathlib import Path

from cnnlab.data.load import data_reads
from cnnlab.files import Read, check_output, real_path
from cnnlab.io import CHECKPOINT_FILE, MODEL_FILE, remove_stale_temporaries, save_json
from cnnlab.train import distributed
from cnnlab.train.config import TrainConfig
from cnnlab.train.trainer import Trainer

BEST_FILE = "best.pt"
CONFIG_FILE = "config.json"
# settings a resumed run may change: they do not alter what the remaining steps compute
RESUME_MAY_CHANGE = ("epochs", "time_limit", "checkpoint_every", "verbose", "tensorboard", "out", "overwrite")
# the files a run holds of its own: no verb may write over them (export --out RUN/model.safetensors, …)
RUN_FILES = (MODEL_FILE, CONFIG_FILE, CHECKPOINT_FILE, BEST_FILE, "metrics.json", "history.csv", "curves.png")
# what else cnnlab writes into a run folder (evaluate, export, bench, explain, lr-find, TensorBoard, temporaries)
RUN_EXTRAS = ("confusion.png", "bench.json", "lr_find.png", "tensorboard", "*.onnx", "*.confusion.png", "explain-*.png")
RUN_EXTRAS += ("pr_curve.png", "*.pr_curve.png")  # detection's evaluate
RUN_EXTRAS += (".*.tmp",)  # what an atomic write killed midway leaves


def written_by_cnnlab(name: str) -> bool:
    """Whether a file of this name in a run folder is one cnnlab writes there."""
    return name in RUN_FILES or any(fnmatch(name, pattern) for pattern in RUN_EXTRAS)


def run_folder_problem(path: Path) -> str | None:
    """Why `path` is not a cnnlab run folder (None: it is one): its config.json must be a run's, and every entry a
    file cnnlab writes into a run folder."""
    try:
        config = json.loads((path / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        config = None
    if not (isinstance(config, dict) and "model" in config and "data" in config):
        return f"it has no {CONFIG_FILE} of a cnnlab run"
    foreign = sorted(p.name for p in path.iterdir() if not written_by_cnnlab(p.name))
    if foreign:
        more = f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        return f"it holds files cnnlab did not write ({', '.join(foreign[:5])}{more})"
    return None


def run_reads(path: str | Path) -> list[Read]:
    """What a verb that opens a run (folder or file) reads, for its outputs to leave alone: a run folder may get new
    files (model.onnx, confusion.png, …) but none of the files of the run itself; a model or ONNX file is itself."""
    path = Path(path)
    if not path.is_dir():
        return [Read(path, "the model file")]
    own = [Read(path / name, f"the run's {name}") for name in RUN_FILES if (path / name).exists()]
    return [Read(path, "the run folder", inside_ok=True), *own]


def train_reads(cfg: TrainConfig) -> list[Read]:
    """What a training run reads: its data and its --init-from source."""
    reads = data_reads(cfg.data, cfg.data_dir)
    if cfg.init_from:
        reads += [Read(r.path, f"{r.what} of --init-from") for r in run_reads(cfg.init_from)]  # not inside it
    return reads


def default_run_name(cfg: TrainConfig) -> str:
    data = cfg.data.split(":")[-1].rstrip("/").split("/")[-1]
    return f"{cfg.model}-{data}-{time.strftime('%Y%m%d-%H%M%S')}"


def check_run_dir(path: str | Path, overwrite: bool = False, reads: Iterable[Read] = ()) -> Path:
    """Refuse a run folder that is, holds or sits inside what the run reads (`reads`: its data, its --init-from
    source), an existing non-empty folder unless `overwrite`, and with `overwrite` anything but a cnnlab run folder
    (see `run_folder_problem`) or a folder that holds the working folder. Creates nothing."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"{path} exists and is not a folder; choose another run folder (--out)")
    check_output(path, reads, "--out", replaces=True, folder=True)
    if not (path.exists() and any(path.iterdir())):
        return path
    if not overwrite:
        raise FileExistsError(f"{path} already exists; choose another run folder (--out) or overwrite it (--overwrite)")
    problem = run_folder_problem(path)
    if problem is not None:
        raise FileExistsError(
            f"--out {path} is not a cnnlab run folder ({problem}); --overwrite replaces only run folders: "
            "choose another --out"
        )
    if Path.cwd().resolve().is_relative_to(real_path(path)):
        raise FileExistsError(f"--out {path} holds the working folder; --overwrite would move it away: choose another")
    return path


class RunFolder:
    """One run's folder: its path and files, its creation, and keeping or discarding it when the run ends."""

    def __init__(self, path: str | Path, resumed: bool = False) -> None:
        self.path = Path(path)
        self.resumed = resumed
        self.main = distributed.is_main()  # rank 0 (or the one process) alone touches the disk
        self.created = False  # this run made the folder: discarding it removes it
        self.replaced: Path | None = None  # the folder --overwrite set aside until the new run has trained

    @classmethod
    def new(cls, cfg: TrainConfig) -> RunFolder:
        """The new run's folder, checked by rank 0 (its default name has the time in it); every rank gets rank 0's
        name, or its refusal. Nothing is created yet."""
        out, error = None, None
        if distributed.is_main():
            try:
                out = check_run_dir(cfg.out or Path("runs") / default_run_name(cfg), cfg.overwrite, train_reads(cfg))
            except (FileExistsError, ValueError, OSError) as e:
                error = e
        out, error = distributed.gather_objects((out, error))[0]
        if error is not None:
            raise error
        return cls(out)

    @classmethod
    def reopen(cls, path: str | Path) -> RunFolder:
        """The folder of a run to resume; it must hold a checkpoint."""
        folder = cls(path, resumed=True)
        if not folder.checkpoint.exists():
            raise FileNotFoundError(f"{folder.path}: no {CHECKPOINT_FILE} to resume from (is it a cnnlab run folder?)")
        return folder

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT_FILE

    @property
    def best(self) -> Path:
        return self.path / BEST_FILE

    def write_config(self, cfg: TrainConfig) -> None:
        if self.main:
            save_json(self.path / CONFIG_FILE, cfg.to_dict())

    @contextmanager
    def lifecycle(self, trainer: Trainer) -> Iterator[RunFolder]:
        """The folder, ready to write in, for the training in the block; after it, the new run is kept or discarded.

        - The block ends (trained, or stopped after a step): the new run is kept, a replaced folder removed.
        - Ctrl-C before the first step (`trainer.interrupted` with no step taken): the run is discarded and
          KeyboardInterrupt raised.
        - An error: the new run is kept if it checkpointed a step, else discarded; the error propagates.
        Discarding removes a folder this run created and puts a replaced one back whole.
        """
        self._open()
        first = trainer.step
        try:
            yield self
        except BaseException:
            self._settle(keep=self.checkpoint.exists() and trainer.step > first)
            raise
        if trainer.interrupted and trainer.step == first:
            self._settle(keep=False)
            raise KeyboardInterrupt
        self._settle(keep=True)

    def _open(self) -> None:
        if not self.main:
            return
        if self.resumed:
            remove_stale_temporaries(self.path)
            return
        if self.path.exists() and any(self.path.iterdir()):
            self.replaced = self.path.with_name(f".{self.path.name}.replaced-{os.getpid()}")
            self.path.rename(self.replaced)
        self.created = True
        self.path.mkdir(parents=True, exist_ok=True)

    def _settle(self, keep: bool) -> None:
        if not self.main:
            return
        if keep:
            if self.replaced is not None:
                shutil.rmtree(self.replaced, ignore_errors=True)
            return
        if self.created:
            shutil.rmtree(self.path, ignore_errors=True)
        if self.replaced is not None and self.replaced.exists():
            self.replaced.rename(self.path)


def resume_config(folder: str | Path, asked: dict) -> TrainConfig:
    """The saved config of run `folder` with the settings in `asked` applied; a setting that would change what
    the remaining steps compute (model, data, optimizer, …) is refused with the difference named."""
    folder = RunFolder.reopen(folder).path
    saved = json.loads((folder / CONFIG_FILE).read_text())
    if saved.get("init_from") and "keep_fc" not in saved:  # written before --keep-fc existed: the run loaded them
        saved["keep_fc"] = True
    diffs = [
        f"{k}={saved.get(k)!r} there, {v!r} here"
        for k, v in asked.items()
        if k not in RESUME_MAY_CHANGE and k in saved and saved[k] != v
    ]
    if diffs:
        raise ValueError(
            f"cannot resume {folder} with other settings: {'; '.join(diffs)} "
            f"(only {', '.join(RESUME_MAY_CHANGE)} may change; start a new run instead)"
        )
    return TrainConfig.from_dict({**saved, **asked, "out": str(folder)})


def check_resumable(state: dict, cfg: TrainConfig, identity: dict, model_keys: set[str], folder: RunFolder) -> None:
    """Refuse a checkpoint made for another model or another dataset, naming the difference."""
    diffs = []
    theirs, ours = state.get("config", {}), cfg.to_dict()
    for key in ("model", "model_args", "data"):
        if key in theirs and theirs[key] != ours[key]:
            diffs.append(f"{key} {theirs[key]!r} (checkpoint) vs {ours[key]!r} (now)")
    for key, value in identity.items():
        if key in state.get("data", {}) and state["data"][key] != value:
            diffs.append(f"{key} {state['data'][key]!r} (checkpoint) vs {value!r} (now)")
    if state.get("world_size", 1) != distributed.world_size() and (state.get("batch") or 0) > 0:
        diffs.append(
            f"{state.get('world_size', 1)} process(es) (checkpoint, stopped mid-epoch) vs "
            f"{distributed.world_size()} (now): resume with the same number of processes"
        )
    missing = set(state["model"]) ^ model_keys
    if missing and not diffs:
        diffs.append(f"the weights do not fit this model ({', '.join(sorted(missing)[:3])} …)")
    if diffs:
        raise ValueError(f"{folder.checkpoint} belongs to another run: {'; '.join(diffs)}")
