"""A whole training run: data → model → Trainer.fit → test evaluation → a run folder with everything in it."""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch

import cnnlab
from cnnlab.data import InMemoryLoader, Normalize, channel_stats, load_dataset
from cnnlab.evaluate import evaluate_model
from cnnlab.io import CHECKPOINT_FILE, MODEL_FILE, load_checkpoint, prepare_run_dir, save_json, save_model
from cnnlab.models import create_model
from cnnlab.plots import plot_history
from cnnlab.train.callbacks import Checkpoint, CSVLogger, EarlyStopping, ProgressBar
from cnnlab.train.config import TrainConfig
from cnnlab.train.losses import ClassificationLoss
from cnnlab.train.optim import build_optimizer
from cnnlab.train.precision import hardware_info
from cnnlab.train.trainer import Trainer


@dataclass
class RunResult:
    out: Path
    metrics: dict
    history: list[dict]


def default_run_name(cfg: TrainConfig) -> str:
    data = cfg.data.split(":")[-1].rstrip("/").split("/")[-1]
    return f"{cfg.model}-{data}-{time.strftime('%Y%m%d-%H%M%S')}"


def train_run(cfg: TrainConfig, callbacks: list | None = None, log=print) -> RunResult:
    """Train `cfg.model` on `cfg.data`, evaluate on the test split and write the run folder `cfg.out`."""
    t0 = time.perf_counter()
    out = prepare_run_dir(cfg.out or Path("runs") / default_run_name(cfg), cfg.overwrite)
    save_json(out / "config.json", cfg.to_dict())
    torch.manual_seed(cfg.seed)

    splits = load_dataset(cfg.data, cfg.data_dir, cfg.val_split, cfg.seed, cfg.mode, cfg.image_size, cfg.strict)
    for note in splits.notes:
        log(note)
    c, h, w = splits.image_shape
    mean, std = channel_stats(splits.train.images)
    log(f"data: {splits.name} from {splits.source} — train {len(splits.train):,}, "
        f"val {len(splits.val) if splits.val else 0:,}, test {len(splits.test) if splits.test else 0:,}; "
        f"{c}×{h}×{w}, {len(splits.classes)} classes")  # fmt: skip

    model_args = dict(cfg.model_args)
    if h != w:
        raise ValueError(f"images are {w}×{h}; cnnlab models take square inputs: pass --image-size")
    model_args.setdefault("img_size", h)
    try:
        model = create_model(cfg.model, num_classes=len(splits.classes), in_chans=c, **model_args)
    except ValueError as e:
        if "too small" not in str(e):
            raise
        raise ValueError(
            f"{cfg.model} cannot take {w}×{h} inputs ({e}); resize them with --image-size, e.g. 32 or 64"
        ) from None
    optimizer = build_optimizer(cfg.optimizer, model.parameters(), cfg.lr, cfg.momentum, cfg.nesterov,
                                cfg.weight_decay)  # fmt: skip
    cbs = [
        ProgressBar(verbose=cfg.verbose),
        CSVLogger(out / "history.csv"),
        Checkpoint(out / CHECKPOINT_FILE),
    ]
    if cfg.patience is not None:
        if splits.val is None:
            raise ValueError("--patience needs validation data: set --val-split above 0")
        cbs.append(EarlyStopping("val_loss", cfg.patience, restore_best=True))
    trainer = Trainer(model, optimizer, ClassificationLoss(cfg.label_smoothing), cfg.device, cfg.precision,
                      cbs + list(callbacks or []))  # fmt: skip
    log(f"model: {cfg.model} ({sum(p.numel() for p in model.parameters()):,} parameters) on "
        f"{trainer.device}, precision {trainer.precision}")  # fmt: skip

    normalize = Normalize(mean, std)
    gen_seed = cfg.seed + 1  # data order stream, separate from the init stream
    train_loader = InMemoryLoader(splits.train, cfg.batch_size, shuffle=True, transform=normalize,
                                  device=trainer.device, seed=gen_seed)  # fmt: skip
    val_loader = None
    if splits.val is not None:
        val_loader = InMemoryLoader(splits.val, 500, transform=normalize, device=trainer.device)
    fit_start = time.perf_counter()
    history = trainer.fit(train_loader, cfg.epochs, val_loader)
    train_seconds = time.perf_counter() - fit_start

    if trainer.interrupted:
        # weights may be mid-epoch: go back to the last finished epoch (or keep the initial ones if none finished)
        ckpt = out / CHECKPOINT_FILE
        if ckpt.exists():
            model.load_state_dict(load_checkpoint(ckpt)["model"])
        log(f"interrupted: keeping the weights of the last finished epoch ({trainer.epoch + 1})")

    meta = {"classes": splits.classes, "input_size": [c, h, w], "mean": mean, "std": std,
            "precision": trainer.precision, "dataset": splits.name, "mode": splits.mode}  # fmt: skip
    test = splits.test or splits.val
    test_split = "test" if splits.test is not None else "val"
    result = evaluate_model(model, test, meta, str(trainer.device)) if test is not None else None
    finished = trainer.epoch + 1
    metrics = {
        "test_accuracy": result["accuracy"] if result else None,
        "test_loss": result["loss"] if result else None,
        "test_split": test_split,
        "val_accuracy": history[-1].get("val_accuracy") if history else None,
        "train_seconds": round(train_seconds, 3),
        "total_seconds": round(time.perf_counter() - t0, 3),
        "epochs": finished,
        "epochs_requested": cfg.epochs,
        "interrupted": trainer.interrupted,
        "samples_per_s": round(sum(h["samples_per_s"] for h in history) / len(history), 1) if history else None,
        "model": cfg.model,
        "parameters": sum(p.numel() for p in model.parameters()),
        "dataset": splits.name,
        "precision": trainer.precision,
        "seed": cfg.seed,
        "versions": {
            "cnnlab": cnnlab.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "hardware": hardware_info(trainer.device),
    }
    save_model(out / MODEL_FILE, model, {**meta, "metrics": {k: metrics[k] for k in
               ("test_accuracy", "test_loss", "val_accuracy", "epochs", "train_seconds")}})  # fmt: skip
    save_json(out / "metrics.json", metrics)
    if history:
        plot_history(history, out / "curves.png", f"{cfg.model} on {splits.name}")
    if result:
        log(f"test accuracy: {result['accuracy']:.4f} ({test_split}, {result['n']:,} samples); "
            f"training took {train_seconds:.1f} s for {finished} epoch(s)")  # fmt: skip
    log(f"run folder: {out}")
    return RunResult(out, metrics, history)
