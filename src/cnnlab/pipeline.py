"""The pipeline that wires a run together: data → model → Trainer.fit → test evaluation → a run folder; and the
learning-rate range test on the same set-up. It sits above train/ and evaluate (it uses both)."""

from __future__ import annotations

import copy
import json
import os
import platform
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import cnnlab
from cnnlab.data import Compose, DataSplits, InMemoryLoader, Normalize, channel_stats, load_dataset
from cnnlab.data.augment import Augment
from cnnlab.data.streaming import FileSet, StreamingFolderLoader, load_streaming, should_stream
from cnnlab.evaluate import evaluate_model
from cnnlab.io import (
    CHECKPOINT_FILE,
    MODEL_FILE,
    check_run_dir,
    load_checkpoint,
    prepare_run_dir,
    remove_stale_temporaries,
    save_json,
    save_model,
)
from cnnlab.layers import init_weights
from cnnlab.models import create_model, is_model
from cnnlab.plots import plot_history, plot_lr_find
from cnnlab.runtime import (
    autocast,
    choose_threads,
    cpu_isa,
    hardware_info,
    precision_reason,
    process_seconds,
    resolve_device,
    resolve_precision,
)
from cnnlab.train import distributed
from cnnlab.train.callbacks import (
    Checkpoint,
    CSVLogger,
    EarlyStopping,
    LRScheduler,
    ProgressBar,
    TensorBoard,
    TerminateOnNaN,
    TimeLimit,
)
from cnnlab.train.callbacks.freeze import FreezeSchedule
from cnnlab.train.callbacks.time_budget import TimeBudget
from cnnlab.train.callbacks.time_limit import parse_duration
from cnnlab.train.config import TrainConfig
from cnnlab.train.losses import ClassificationLoss
from cnnlab.train.lr_find import LRRangeTest, smoothed, suggest_lr
from cnnlab.train.optim import FULL_BATCH, build_optimizer
from cnnlab.train.trainer import Trainer
from cnnlab.train.transfer import load_pretrained, param_groups, read_source

BEST_FILE = "best.pt"
# settings a resumed run may change: they do not alter what the remaining steps compute
RESUME_MAY_CHANGE = ("epochs", "time_limit", "checkpoint_every", "verbose", "tensorboard", "out", "overwrite")


@dataclass
class RunResult:
    out: Path
    metrics: dict
    history: list[dict]


@dataclass
class Setup:
    """What a run trains: data splits, model, trainer and loaders (shared by `train_run` and `lr_find`)."""

    cfg: TrainConfig
    splits: DataSplits
    model: torch.nn.Module
    trainer: Trainer
    train_loader: InMemoryLoader
    val_loader: InMemoryLoader | None
    augment: Augment | None
    meta: dict


def default_run_name(cfg: TrainConfig) -> str:
    data = cfg.data.split(":")[-1].rstrip("/").split("/")[-1]
    return f"{cfg.model}-{data}-{time.strftime('%Y%m%d-%H%M%S')}"


def build(cfg: TrainConfig, callbacks: list | None = None, log=print) -> Setup:
    """Load the data, create (and initialize) the model, the optimizer, the Trainer and the loaders of `cfg`."""
    cfg.validate()
    device = distributed.setup(cfg.device)  # under torchrun: join the process group; cuda → cuda:LOCAL_RANK
    rank, world = distributed.rank(), distributed.world_size()
    torch.manual_seed(cfg.seed)
    if cfg.stream or should_stream(cfg.data, cfg.image_size, cfg.mode):  # decoded batch by batch from disk
        splits = load_streaming(cfg.data, cfg.val_split, cfg.seed, cfg.mode, cfg.image_size, cfg.strict)
    else:
        splits = load_dataset(cfg.data, cfg.data_dir, cfg.val_split, cfg.seed, cfg.mode, cfg.image_size, cfg.strict)
    for note in splits.notes:
        log(note)
    if cfg.max_train_samples is not None and cfg.max_train_samples < len(splits.train):
        splits.train = splits.train.subset(slice(0, cfg.max_train_samples))
        log(f"training on the first {cfg.max_train_samples:,} training images (max_train_samples)")
    c, h, w = splits.image_shape
    mean, std = channel_stats(splits.train.images)  # a streamed set: of its decoded sample
    log(
        f"data: {splits.name} from {splits.source} — train {len(splits.train):,}, "
        f"val {len(splits.val) if splits.val else 0:,}, test {len(splits.test) if splits.test else 0:,}; "
        f"{c}×{h}×{w}, {len(splits.classes)} classes"
    )
    if cfg.patience is not None and splits.val is None:
        raise ValueError("--patience needs validation data: set --val-split above 0")

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
    if cfg.init is not None:
        init_weights(model, cfg.init)
    if cfg.sync_bn and world > 1:
        model = distributed.sync_batchnorm(model, resolve_device(device))
    params, init_from = model, None
    if cfg.init_from is not None:  # transfer learning: trained weights, a new head, the backbone at a lower LR
        params, init_from, callbacks = _init_from(cfg, model, splits.classes, list(callbacks or []), log)
    optimizer = build_optimizer(
        cfg.optimizer, params, cfg.lr, cfg.momentum, cfg.nesterov, cfg.weight_decay, cfg.decay_all
    )
    accumulate = 0 if cfg.optimizer in FULL_BATCH else cfg.accumulate  # 0: the whole epoch per step
    trainer = Trainer(
        model,
        optimizer,
        ClassificationLoss(cfg.label_smoothing),
        device,
        cfg.precision,
        list(callbacks or []),
        accumulate=accumulate,
        grad_clip=cfg.grad_clip,
        compile=cfg.compile,
    )
    augment = None
    if cfg.augment:
        # each rank its own augmentation stream (rank 0's is the single process's)
        augment = Augment(cfg.augment, len(splits.classes), seed=cfg.seed + 2 + 7919 * rank, device=trainer.device)
        trainer.track("augment", augment)
        trainer.mix = augment.mix if augment.mixes else None

    normalize = Normalize(mean, std)
    transform = Compose([augment, normalize]) if augment is not None else normalize
    # data order stream, separate from the init stream (seed) and the augmentation stream (seed + 2)
    # distributed: the same order on every rank, each rank its share of every global batch of --batch-size
    source = StreamingFolderLoader if isinstance(splits.train, FileSet) else InMemoryLoader
    train_loader = source(
        splits.train,
        cfg.batch_size,
        shuffle=True,
        transform=transform,
        device=trainer.device,
        seed=cfg.seed + 1,
        rank=rank,
        world=world,
    )
    val_loader = None
    if splits.val is not None:
        val_loader = InMemoryLoader(splits.val, 500, transform=normalize, device=trainer.device, rank=rank, world=world)
    meta = {
        "classes": splits.classes,
        "input_size": [c, h, w],
        "mean": mean,
        "std": std,
        "precision": trainer.precision,
        "dataset": splits.name,
        "mode": splits.mode,
        "tta": cfg.tta,
    }
    if init_from is not None:
        meta["init_from"] = init_from
    return Setup(cfg, splits, model, trainer, train_loader, val_loader, augment, meta)


def _init_from(cfg: TrainConfig, model: torch.nn.Module, classes: list[str], callbacks: list, log):
    """Load `cfg.init_from` into `model`; returns the optimizer's parameter groups, what the run records about the
    source, and the callbacks with the freeze schedule added."""
    source = read_source(cfg.init_from)
    report = load_pretrained(model, source, classes, strict=cfg.init_strict, log=log)
    groups = param_groups(model, cfg.lr, cfg.weight_decay, cfg.backbone_lr_mult, cfg.decay_all)
    freeze = cfg.freeze or "features"
    if cfg.freeze_epochs > 0 and freeze != "none":
        callbacks = [*callbacks, FreezeSchedule(freeze, cfg.freeze_epochs, log)]
    info = {
        **source.describe(),
        "freeze": freeze,
        "freeze_epochs": cfg.freeze_epochs,
        "backbone_lr_mult": cfg.backbone_lr_mult,
        "report": report.to_dict(),
    }
    return groups, info, callbacks


def _schedule_callback(cfg: TrainConfig) -> LRScheduler:
    end_ratio = cfg.lr_end / cfg.lr if cfg.lr_end is not None else None
    return LRScheduler(
        cfg.schedule,
        cfg.schedule_unit,
        cfg.warmup,
        patience=cfg.plateau_patience,
        end_ratio=end_ratio,
        decay_length=cfg.decay_length,
        step_size=cfg.step_size,
        gamma=cfg.gamma,
    )


def _data_identity(setup: Setup) -> dict:
    train = setup.splits.train
    return {
        "dataset": setup.splits.name,
        "train_images": len(train),
        "classes": setup.splits.classes,
        "input_size": setup.meta["input_size"],
    }


def resume_config(folder: str | Path, asked: dict) -> TrainConfig:
    """The saved config of run `folder` with the settings in `asked` applied; a setting that would change what
    the remaining steps compute (model, data, optimizer, …) is refused with the difference named."""
    folder = Path(folder)
    if not (folder / CHECKPOINT_FILE).exists():
        raise FileNotFoundError(f"{folder}: no {CHECKPOINT_FILE} to resume from (is it a cnnlab run folder?)")
    saved = json.loads((folder / "config.json").read_text())
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


def _check_resumable(state: dict, setup: Setup, folder: Path) -> None:
    """Refuse a checkpoint made for another model or another dataset, naming the difference."""
    diffs = []
    theirs, ours = state.get("config", {}), setup.cfg.to_dict()
    for key in ("model", "model_args", "data"):
        if key in theirs and theirs[key] != ours[key]:
            diffs.append(f"{key} {theirs[key]!r} (checkpoint) vs {ours[key]!r} (now)")
    for key, value in _data_identity(setup).items():
        if key in state.get("data", {}) and state["data"][key] != value:
            diffs.append(f"{key} {state['data'][key]!r} (checkpoint) vs {value!r} (now)")
    if state.get("world_size", 1) != distributed.world_size() and (state.get("batch") or 0) > 0:
        diffs.append(
            f"{state.get('world_size', 1)} process(es) (checkpoint, stopped mid-epoch) vs "
            f"{distributed.world_size()} (now): resume with the same number of processes"
        )
    missing = set(state["model"]) ^ set(setup.model.state_dict())
    if missing and not diffs:
        diffs.append(f"the weights do not fit this model ({', '.join(sorted(missing)[:3])} …)")
    if diffs:
        raise ValueError(f"{folder / CHECKPOINT_FILE} belongs to another run: {'; '.join(diffs)}")


def _check_before_data(cfg: TrainConfig) -> None:
    """What needs no data, checked before any is loaded and before a run folder exists: a failed start leaves
    nothing behind."""
    cfg.validate()
    if not is_model(cfg.model):
        create_model(cfg.model)  # raises the registry's error, with close names
    resolve_precision(cfg.precision, resolve_device(cfg.device))


def _choose_threads(cfg: TrainConfig, setup: Setup) -> tuple[str, float | None]:
    """Set the CPU thread count: --threads, else measured (one training step of a copy at each candidate).

    Returns what was chosen and why (one phrase), and the measured seconds per training step of a full batch
    (a first estimate for a time budget), when it was measured."""
    trainer = setup.trainer
    if trainer.device.type != "cpu":
        return f"threads {torch.get_num_threads()} (CPU side of a {trainer.device.type} run)", None
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
        return f"threads {cfg.threads} (asked for)", None
    default = torch.get_num_threads()
    candidates = [default, 1] if default > 1 else [1]
    net = copy.deepcopy(setup.model).train()
    x, y = _probe_batch(setup, 64)
    loss_fn = trainer.loss_fn

    def step() -> None:
        with autocast(trainer.device, trainer.precision):
            loss = loss_fn(net(x), y)
        loss.backward()
        net.zero_grad(set_to_none=True)

    chosen, times = choose_threads(step, candidates)
    if len(times) == 1:
        why = "one core"
    else:
        ms = ", ".join(f"{t * 1e3:.1f} ms with {n}" for n, t in times.items())
        why = f"{'the fastest' if chosen == 1 else 'one per core'}; a training step took {ms}"
    step_s = times[chosen] * cfg.batch_size / len(x) * 1.3  # the probe has no optimizer step and ≤ 64 samples
    return f"threads {chosen} ({why})", step_s


def _probe_batch(setup: Setup, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The first training images as model input, for measurements: read without drawing from any random stream
    (the loader's order and the augmentation stay exactly as an unmeasured run has them)."""
    n = min(setup.cfg.batch_size, limit or setup.cfg.batch_size, len(setup.splits.train))
    device = setup.trainer.device
    x = Normalize(setup.meta["mean"], setup.meta["std"])(setup.splits.train.images[:n].to(device))
    if setup.trainer.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, setup.splits.train.labels[:n].to(device)


def _epochs_done(trainer: Trainer) -> float:
    return round(trainer.epoch + 1 + trainer.batch / max(trainer.steps_per_epoch, 1), 3)


def train_run(
    cfg: TrainConfig, callbacks: list | None = None, log=print, resume: str | Path | None = None
) -> RunResult:
    """Train `cfg.model` on `cfg.data`, evaluate on the test split and write the run folder `cfg.out`.

    resume: a run folder whose checkpoint to continue from (exactly: same weights as a run never interrupted).
    """
    t0 = time.perf_counter()
    _check_before_data(cfg)
    distributed.setup(cfg.device)
    main = distributed.is_main()  # rank 0 (or the one process) prints, writes the run folder, checkpoints, plots
    if not main:
        log = _quiet
    if resume is not None:
        if cfg.time_budget is not None:
            raise ValueError("a run with a time budget cannot be resumed: its schedule was laid out for its own time")
        out = Path(resume)
        state = load_checkpoint(out / CHECKPOINT_FILE)
    else:
        out = _agreed_run_dir(cfg)
        state = None

    # each callback's `order` places it (stateful ones before the checkpoint, the CSV row after it), not this list
    cbs = [_schedule_callback(cfg), TerminateOnNaN()]
    if cfg.patience is not None:
        cbs.append(EarlyStopping("val_loss", cfg.patience, restore_best=True))
    if cfg.time_limit is not None:
        cbs.append(TimeLimit(cfg.time_limit))
    cbs += list(callbacks or [])
    cbs.append(
        Checkpoint(out / CHECKPOINT_FILE, cfg.checkpoint_every, out / BEST_FILE, log=log if cfg.verbose >= 2 else None)
    )
    checkpoint = cbs[-1]
    if main:
        cbs += [ProgressBar(verbose=cfg.verbose), CSVLogger(out / "history.csv")]
    if cfg.tensorboard and main:
        try:
            cbs.append(TensorBoard(out / "tensorboard"))
        except ImportError as e:
            warnings.warn(f"{e}; training without event files", stacklevel=2)
    setup = build(cfg, cbs, log)
    model, trainer = setup.model, setup.trainer
    threads, step_estimate = _choose_threads(cfg, setup)
    budget = None
    if cfg.time_budget is not None:
        budget = TimeBudget(
            parse_duration(cfg.time_budget),
            process_seconds,
            probe=_probe_batch(setup)[0],
            val_samples=len(setup.splits.val) if setup.val_loader is not None else 0,
            post_samples=_test_samples(setup) * (2 if cfg.tta else 1),
            estimate_step_s=step_estimate,
            log=log,
        )
        trainer.callbacks.add(budget)
    created = main and resume is None and not out.exists()
    replaced = None  # the folder --overwrite replaces: kept aside until the new run has trained (else put back)
    if main and resume is None:  # only rank 0 touches the run folder
        if out.exists() and any(out.iterdir()):
            replaced = out.with_name(f".{out.name}.replaced-{os.getpid()}")
            out.rename(replaced)
        prepare_run_dir(out, cfg.overwrite)
    elif main:
        remove_stale_temporaries(out)
    checkpoint.extra = {"config": cfg.to_dict(), "data": _data_identity(setup), "world_size": distributed.world_size()}
    log(
        f"model: {cfg.model} ({sum(p.numel() for p in model.parameters()):,} parameters) on {trainer.device}; "
        f"precision {precision_reason(cfg.precision, trainer.device, trainer.precision)}; {threads}; "
        f"CPU ISA {cpu_isa()}"
    )
    if state is not None:
        _check_resumable(state, setup, out)
        trainer.load_state_dict(state)
        where = f"epoch {trainer.epoch + 2}, batch {trainer.batch}" if trainer.batch else f"epoch {trainer.epoch + 2}"
        log(f"resuming {out} at {where} (step {trainer.step})")

    if state is not None and trainer.epoch + 1 >= cfg.max_epochs and trainer.batch == 0:
        raise ValueError(
            f"{out} has already finished its {trainer.epoch + 1} epoch(s); nothing to resume "
            "(give a larger --epochs to train on)"
        )
    if main:
        save_json(out / "config.json", cfg.to_dict())  # after every refusal: a refused resume rewrites nothing

    first_step = trainer.step
    fit_start = time.perf_counter()
    try:
        history = trainer.fit(setup.train_loader, cfg.max_epochs, setup.val_loader)
    except KeyboardInterrupt:
        trainer.interrupted = True
    except BaseException as e:
        _settle_replaced(out, replaced, keep_new=(out / CHECKPOINT_FILE).exists() and trainer.step > first_step)
        if distributed.active() and distributed.is_peer_failure(e):
            raise distributed.as_distributed_error(e, out) from None
        raise
    train_seconds = time.perf_counter() - fit_start
    if trainer.interrupted and trainer.step == first_step:  # Ctrl-C before a step finished: nothing to save
        if created or replaced is not None:
            shutil.rmtree(out, ignore_errors=True)
        _settle_replaced(out, replaced, keep_new=False)
        raise KeyboardInterrupt
    _settle_replaced(out, replaced, keep_new=True)
    if not main:  # rank 0 evaluates and writes the run folder
        return RunResult(out, {}, history)
    if cfg.sync_bn:
        model = distributed.plain_batchnorm(model)

    done = _epochs_done(trainer)
    rows = history + ([trainer.partial] if trainer.partial else [])
    if trainer.interrupted or trainer.diverged:
        # weights may be mid-step or not finite: go back to the last good checkpoint (written before the first step)
        ckpt = load_checkpoint(out / CHECKPOINT_FILE)
        model.load_state_dict(ckpt["model"])
        done = round(ckpt["epoch"] + 1 + ckpt["batch"] / max(trainer.steps_per_epoch, 1), 3)
        why = "interrupted" if trainer.interrupted else f"stopped: {trainer.stop_reason}"
        log(f"{why}; keeping the weights of the last good checkpoint ({done:g} epochs, step {ckpt['step']})")
    elif trainer.stop_reason:
        log(f"stopped: {trainer.stop_reason}")

    meta = setup.meta
    test = setup.splits.test or setup.splits.val
    test_split = "test" if setup.splits.test is not None else "val"
    result = evaluate_model(model, test, meta, str(trainer.device)) if test is not None else None
    trained = [r for r in rows if r.get("samples_per_s")]
    rate = sum(r["samples_per_s"] * r["seconds"] for r in trained) / max(sum(r["seconds"] for r in trained), 1e-9)
    metrics = {
        "test_accuracy": result["accuracy"] if result else None,
        "test_loss": result["loss"] if result else None,
        "test_split": test_split,
        "val_accuracy": history[-1].get("val_accuracy") if history else None,
        "train_seconds": round(train_seconds, 3),
        "total_seconds": round(time.perf_counter() - t0, 3),
        "process_seconds": None,  # filled below, once everything is written
        "epochs": done,
        "epochs_requested": cfg.epochs,
        "steps": trainer.step,
        "interrupted": trainer.interrupted,
        "stop_reason": trainer.stop_reason,
        "resumed": state is not None,
        "samples_per_s": round(rate, 1) if trained else None,
        "time_budget": budget.plan if budget is not None else None,
        "model": cfg.model,
        "parameters": sum(p.numel() for p in model.parameters()),
        "dataset": setup.splits.name,
        "precision": trainer.precision,
        "seed": cfg.seed,
        "init_from": setup.meta.get("init_from"),
        "world_size": distributed.world_size(),
        "versions": {
            "cnnlab": cnnlab.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "hardware": hardware_info(trainer.device),
    }
    save_model(
        out / MODEL_FILE,
        model,
        {
            **meta,
            "metrics": {
                k: metrics[k] for k in ("test_accuracy", "test_loss", "val_accuracy", "epochs", "train_seconds")
            },
        },
    )
    if rows:
        smoothing = f"includes label smoothing {cfg.label_smoothing:g}" if cfg.label_smoothing else None
        plot_history(rows, out / "curves.png", f"{cfg.model} on {setup.splits.name}", loss_note=smoothing)
    metrics["process_seconds"] = round(process_seconds(), 3)
    save_json(out / "metrics.json", metrics)
    if result:
        log(
            f"test accuracy: {result['accuracy']:.4f} ({test_split}, {result['n']:,} samples); "
            f"training took {train_seconds:.1f} s for {done:g} epochs ({trainer.step:,} steps)"
        )
    log(f"run folder: {out}")
    return RunResult(out, metrics, history)


def _quiet(*args, **kwargs) -> None:
    """The log of ranks other than 0: they print nothing."""


def _agreed_run_dir(cfg: TrainConfig) -> Path:
    """The new run folder, checked by rank 0 (its default name has the time in it); every rank gets rank 0's name,
    or its refusal."""
    out, error = None, None
    if distributed.is_main():
        try:
            out = check_run_dir(cfg.out or Path("runs") / default_run_name(cfg), cfg.overwrite)
        except (FileExistsError, ValueError, OSError) as e:
            error = e
    out, error = distributed.gather_objects((out, error))[0]
    if error is not None:
        raise error
    return Path(out)


def _settle_replaced(out: Path, replaced: Path | None, keep_new: bool) -> None:
    """An --overwrite run that trained: drop the old folder; one that did not: put the old folder back whole."""
    if replaced is None or not replaced.exists():
        return
    if keep_new:
        shutil.rmtree(replaced, ignore_errors=True)
    else:
        shutil.rmtree(out, ignore_errors=True)
        replaced.rename(out)


def _test_samples(setup: Setup) -> int:
    test = setup.splits.test or setup.splits.val
    return len(test) if test is not None else 0


def lr_find(
    cfg: TrainConfig, min_lr: float = 1e-7, max_lr: float = 10.0, steps: int = 100, out: str | Path = ".", log=print
) -> dict:
    """Run the range test on `cfg`'s model and data; writes `out`/lr_find.png and returns lrs, losses, suggestion."""
    if distributed.launched():
        raise ValueError("lr-find runs in one process; start it without torchrun or --nproc")
    test = LRRangeTest(min_lr, max_lr, steps)
    setup = build(cfg, [test, ProgressBar(verbose=cfg.verbose)], log)
    setup.trainer.fit(setup.train_loader, epochs=steps)  # every epoch has ≥ 1 step; the test stops the run
    if len(test.losses) < 3:
        raise ValueError(f"lr-find stopped after {len(test.losses)} steps; lower --min-lr or use more data")
    lrs = np.array(test.lrs)
    losses = torch.stack(test.losses).float().cpu().numpy()
    smooth = smoothed(losses)
    suggestion = suggest_lr(lrs, smooth)
    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    png = plot_lr_find(lrs, losses, smooth, suggestion, path / "lr_find.png", f"{cfg.model} on {setup.splits.name}")
    return {"lrs": lrs.tolist(), "losses": losses.tolist(), "suggested_lr": suggestion, "png": str(png)}
