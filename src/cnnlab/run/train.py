"""`train_run`: a whole run, from a config to a run folder — check → folder → setup → resume → fit → finish."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from cnnlab.data.streaming import StreamError
from cnnlab.io import load_checkpoint
from cnnlab.run.finish import RunResult, finish
from cnnlab.run.folder import RunFolder, check_resumable
from cnnlab.run.setup import Setup, build, check, data_identity
from cnnlab.runtime import resolve_device
from cnnlab.train import distributed
from cnnlab.train.config import TrainConfig
from cnnlab.train.state import check_state


def train_run(
    cfg: TrainConfig,
    callbacks: list | None = None,
    log=print,
    resume: str | Path | None = None,
    clock: Callable[[], float] | None = None,
) -> RunResult:
    """Train `cfg.model` on `cfg.data`, evaluate on the test split and write the run folder `cfg.out`.

    callbacks: added to the run's own (schedule, NaN guard, early stopping, time limit, checkpoint, progress, logs).
    resume: a run folder whose checkpoint to continue from (exactly: same weights as a run never interrupted).
    clock: the seconds the job has spent so far, which a --time-budget counts (default: since this call; `cnnlab
    train` counts from its process start, so that its budget covers start-up too).
    """
    started = time.perf_counter()
    clock = clock or (lambda: time.perf_counter() - started)
    check(cfg)
    if resume is not None and cfg.time_budget is not None:
        raise ValueError("a run with a time budget cannot be resumed: its schedule was laid out for its own time")
    # under torchrun: join the process group; cuda → cuda:LOCAL_RANK
    device = resolve_device(distributed.setup(cfg.device))
    log = log if distributed.is_main() else _quiet  # rank 0 prints, writes the run folder, evaluates and plots
    folder = RunFolder.reopen(resume) if resume is not None else RunFolder.new(cfg)
    state = load_checkpoint(folder.checkpoint) if resume is not None else None
    setup = build(cfg, device, callbacks, log, folder, clock)
    for line in setup.startup_lines(cfg.verbose):
        log(line)
    if state is not None:
        _resume(state, setup, folder, log)
    trainer = setup.trainer
    timing = TrainingTime()
    trainer.track("training_time", timing)  # a resumed checkpoint's earlier sessions are restored here
    earlier = timing.resumed(trainer.history) if state is not None else None
    with folder.lifecycle(trainer):
        folder.write_config(cfg)  # after every refusal: a refused resume rewrites nothing
        timing.begin()
        _fit(setup, folder)
    if not distributed.is_main():
        return RunResult(folder.path, {}, trainer.history)
    return finish(setup, folder, started, timing.session(), earlier, log)


class TrainingTime:
    """Seconds spent training, over every session of a run: kept in each checkpoint (a tracked object), so that a
    resumed run reports the whole run and not only its last session. Time after an earlier session's last checkpoint
    is not counted: that work was lost and is done again in this session."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.start: float | None = None
        self.earlier: float | None = None  # from the checkpoint this session resumed

    def begin(self) -> None:
        self.start = self.clock()

    def session(self) -> float:
        """Seconds since `begin` (0 before it)."""
        return self.clock() - self.start if self.start is not None else 0.0

    def resumed(self, history: list[dict]) -> float:
        """The earlier sessions' seconds, once the checkpoint is loaded; for a checkpoint written before they were
        kept, the time of its finished epochs (`history`)."""
        if self.earlier is None:
            self.earlier = sum(row.get("seconds", 0.0) for row in history)
        return self.earlier

    def state_dict(self) -> dict:
        return {"seconds": (self.earlier or 0.0) + self.session()}

    def load_state_dict(self, state: dict) -> None:
        self.earlier = float(state["seconds"])


def _resume(state: dict, setup: Setup, folder: RunFolder, log) -> None:
    """Load a checkpoint into the set-up, after checking that it belongs to this run and has work left."""
    trainer = setup.trainer
    check_resumable(state, setup.cfg, data_identity(setup.splits), set(setup.model.state_dict()), folder)
    try:
        check_state(state, trainer, len(setup.train_loader))
        trainer.load_state_dict(state)
    except ValueError as e:
        raise ValueError(f"{folder.checkpoint}: cannot be resumed: {e}; start a new run") from None
    except (RuntimeError, KeyError, TypeError, IndexError, AttributeError) as e:  # what the checks did not foresee
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise ValueError(
            f"{folder.checkpoint}: cannot be resumed: a damaged checkpoint ({first}); start a new run"
        ) from None
    if trainer.epoch + 1 >= setup.cfg.max_epochs and trainer.batch == 0:
        raise ValueError(
            f"{folder.path} has already finished its {trainer.epoch + 1} epoch(s); nothing to resume "
            "(give a larger --epochs to train on)"
        )
    where = f"epoch {trainer.epoch + 2}, batch {trainer.batch}" if trainer.batch else f"epoch {trainer.epoch + 2}"
    log(f"resuming {folder.path} at {where} (step {trainer.step})")


def _fit(setup: Setup, folder: RunFolder) -> None:
    """`Trainer.fit`; Ctrl-C outside the training loop marks the run interrupted, and a peer lost in a distributed
    run becomes one `DistributedError` line."""
    trainer = setup.trainer
    try:
        trainer.fit(setup.train_loader, setup.cfg.max_epochs, setup.val_loader)
    except KeyboardInterrupt:
        trainer.interrupted = True
    except StreamError as e:  # the data changed under the run: say what becomes of it
        if folder.resumed or trainer.step > 0:  # the folder and its last checkpoint are kept (`lifecycle`)
            same = f" --nproc {distributed.world_size()}" if distributed.active() else ""
            then = f"fix the data, then `cnnlab train --resume {folder.path}{same}` finishes it"
            raise StreamError(f"{e}; the run stopped at its last checkpoint: {then}") from None
        raise StreamError(f"{e}; nothing was trained yet and nothing is kept: fix the data and start again") from None
    except BaseException as e:
        if distributed.active() and distributed.is_peer_failure(e):
            raise distributed.as_distributed_error(e, folder.path) from None
        raise


def _quiet(*args, **kwargs) -> None:
    """The log of ranks other than 0: they print nothing."""
