"""The end of a run: the last good weights, the final evaluation, metrics.json, the model file and the curves."""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch

import cnnlab
from cnnlab.evaluate import evaluate
from cnnlab.infer import TorchClassifier
from cnnlab.io import MODEL_FILE, load_checkpoint, save_json, save_model
from cnnlab.plots import plot_history
from cnnlab.run.folder import RunFolder
from cnnlab.run.setup import Setup
from cnnlab.runtime import hardware_info, process_seconds
from cnnlab.train import distributed
from cnnlab.train.callbacks.progress import plural

# what the model file keeps of metrics.json
MODEL_FILE_METRICS = ("test_accuracy", "test_loss", "val_accuracy", "epochs", "train_seconds")


@dataclass
class RunResult:
    out: Path
    metrics: dict
    history: list[dict]


def finish(
    setup: Setup, folder: RunFolder, started: float, train_seconds: float, earlier: float | None = None, log=print
) -> RunResult:
    """Write the run's results into its folder and return them.

    started: `time.perf_counter()` when the run began; train_seconds: the time this session spent in `Trainer.fit`;
    earlier: the training seconds of the sessions before a resume (None: the run was not resumed).
    The final evaluation goes through the same path as `cnnlab evaluate` (a `TorchClassifier`), so evaluating the
    run folder later reproduces `test_accuracy` and `val_accuracy` exactly.
    """
    trainer, cfg, task = setup.trainer, setup.cfg, setup.trainer.task
    model = distributed.plain_batchnorm(setup.model) if cfg.sync_bn else setup.model
    epochs = _last_good_weights(setup, model, folder, log)
    classifier = TorchClassifier(model, setup.meta, trainer.device)
    held = setup.splits.held_out()
    test = evaluate(classifier, held[1]) if held is not None else None
    val = None
    if setup.splits.val is not None:
        val = test if held is not None and held[0] == "val" else evaluate(classifier, setup.splits.val)
    rows = trainer.history + ([trainer.partial] if trainer.partial else [])
    metrics = {
        "test_accuracy": test["accuracy"] if test else None,
        "test_loss": test["loss"] if test else None,
        "test_split": held[0] if held is not None else None,
        "val_accuracy": val["accuracy"] if val else None,
        "val_loss": val["loss"] if val else None,
        "train_seconds": round(train_seconds + (earlier or 0.0), 3),  # the whole run, every session
        "session_train_seconds": round(train_seconds, 3),
        "total_seconds": round(time.perf_counter() - started, 3),
        "process_seconds": None,  # filled below, once everything is written
        "epochs": epochs,
        "epochs_requested": cfg.epochs,
        "steps": trainer.step,
        "interrupted": trainer.interrupted,
        "stop_reason": trainer.stop_reason,
        "resumed": earlier is not None,
        "task": task.name,
        "samples_per_s": _mean_rate(rows),
        "time_budget": setup.budget.plan if setup.budget is not None else None,
        "model": cfg.model,
        "parameters": sum(p.numel() for p in model.parameters()),
        "dataset": setup.splits.name,
        "precision": trainer.precision,
        "startup": setup.details(),  # why that precision and thread count, the CPU's vector instructions
        "seed": cfg.seed,
        "init_from": setup.meta.init_from,
        "world_size": distributed.world_size(),
        "versions": {"cnnlab": cnnlab.__version__, "torch": torch.__version__, "python": platform.python_version()},
        "hardware": hardware_info(trainer.device),
    }
    extra = _task_metrics(task, test, val)  # a task's own numbers beside accuracy and loss, e.g. test_iou
    metrics.update(extra)
    summary = {k: metrics[k] for k in MODEL_FILE_METRICS} | extra
    _check_finite(model, folder.path / MODEL_FILE)
    save_model(folder.path / MODEL_FILE, model, setup.meta.replace(metrics=summary))
    if rows:
        smoothing = f"includes label smoothing {cfg.label_smoothing:g}" if cfg.label_smoothing else None
        title = f"{cfg.model} on {setup.splits.name}"
        plot_history(rows, folder.path / "curves.png", title, loss_note=smoothing, metrics=task.running_metrics)
    metrics["process_seconds"] = round(process_seconds(), 3)
    save_json(folder.path / "metrics.json", metrics)
    if test:
        log(f"{task.headline(test)} ({held[0]}, {test['n']:,} samples); {_took(setup, train_seconds, earlier)}")
    log(f"run folder: {folder.path}")
    return RunResult(folder.path, metrics, trainer.history)


def _took(setup: Setup, seconds: float, earlier: float | None) -> str:
    """'training took 12.3 s for 1.6 epochs, 686 steps': what was trained (which may be more than the weights kept
    after a stop); after a resume the whole run's time, and this session's."""
    t = setup.trainer
    trained = round(t.epoch + 1 + t.batch / max(t.steps_per_epoch, 1), 3)
    work = f"{plural(trained, 'epoch')}, {plural(t.step, 'step')}"
    if earlier is None:
        return f"training took {seconds:.1f} s for {work}"
    return f"training took {earlier + seconds:.1f} s for {work} in all ({seconds:.1f} s in this session)"


def _task_metrics(task, test: dict | None, val: dict | None) -> dict:
    """test_<name> and val_<name> of the task's numbers other than accuracy and loss (which every run reports)."""
    out = {}
    for split, result in (("test", test), ("val", val)):
        names = [k for k in task.summary(result) if k not in ("accuracy", "loss")] if result else []
        out |= {f"{split}_{k}": result[k] for k in names}
    return out


def _last_good_weights(setup: Setup, model: torch.nn.Module, folder: RunFolder, log) -> float:
    """After Ctrl-C or a divergence the weights may be mid-step or not finite: load the last good checkpoint's
    (written before the first step at the latest). Returns the epochs the kept weights were trained for."""
    t = setup.trainer
    done = round(t.epoch + 1 + t.batch / max(t.steps_per_epoch, 1), 3)
    if t.interrupted or t.diverged:
        ckpt = load_checkpoint(folder.checkpoint)
        model.load_state_dict(ckpt["model"])
        done = round(ckpt["epoch"] + 1 + ckpt["batch"] / max(t.steps_per_epoch, 1), 3)
        why = "interrupted" if t.interrupted else f"stopped: {t.stop_reason}"
        kept = f"{plural(done, 'epoch')}, {plural(ckpt['step'], 'step')}"
        log(f"{why}; keeping the weights of the last good checkpoint ({kept})")
    elif t.stop_reason:
        log(f"stopped: {t.stop_reason}")
    return done


def _check_finite(model: torch.nn.Module, path: Path) -> None:
    """Non-finite weights never replace a model file: the run ends with one line and the previous file stays."""
    bad = [k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ValueError(
            f"{path} not written: the weights to keep are not finite (nan or inf in {', '.join(bad[:3])}); "
            "the previous file, if any, is kept"
        )


def _mean_rate(rows: list[dict]) -> float | None:
    """Training samples per second over the epochs that measured it, weighted by their duration."""
    timed = [r for r in rows if r.get("samples_per_s")]
    if not timed:
        return None
    seconds = sum(r["seconds"] for r in timed)
    return round(sum(r["samples_per_s"] * r["seconds"] for r in timed) / max(seconds, 1e-9), 1)
