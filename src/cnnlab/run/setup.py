"""A run's set-up in one place: data → model → probes → callbacks → optimizer → Trainer → loaders.

Every object is built whole, in the order its inputs exist: the thread probe times a copy of the model before the
Trainer exists, the time budget is built from that estimate, the checkpoint knows the data it saves the run of, and
the Trainer receives the complete callback list and the augmentation's batch mixing. Nothing is patched afterwards.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from cnnlab.data import Compose, DataSplits, InMemoryLoader, Normalize, channel_stats
from cnnlab.data.augment import Augment
from cnnlab.data.loader import BatchLoader
from cnnlab.data.streaming import FileSet, StreamingFolderLoader, decoded
from cnnlab.data.targets import KINDS
from cnnlab.io import RunMeta
from cnnlab.layers import init_weights
from cnnlab.models import create_model, is_model
from cnnlab.run.folder import RunFolder
from cnnlab.run.splits import data_record, load_splits
from cnnlab.runtime import (
    cpu_isa,
    precision_reason,
    process_seconds,
    resolve_device,
    resolve_precision,
    use_channels_last,
)
from cnnlab.tasks import Task, get_task, make_task
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
from cnnlab.train.callbacks.progress import plural
from cnnlab.train.callbacks.time_budget import TimeBudget
from cnnlab.train.callbacks.time_limit import parse_duration
from cnnlab.train.config import TrainConfig
from cnnlab.train.fit_check import check_fit
from cnnlab.train.optim import FULL_BATCH, build_optimizer
from cnnlab.train.probe import PROBE_SAMPLES, choose_training_threads
from cnnlab.train.trainer import Trainer
from cnnlab.train.transfer import check_source, load_pretrained, param_groups, read_source

MODEL_NAME_CHARS = 40  # of a model's name in the start-up line (a notation string can be hundreds)


@dataclass
class Setup:
    """What a run trains: data splits, model, trainer and loaders, and what the model file will say about it."""

    cfg: TrainConfig
    splits: DataSplits
    model: nn.Module
    trainer: Trainer
    train_loader: BatchLoader
    val_loader: InMemoryLoader | None
    meta: RunMeta  # the model file's metadata, without the final metrics
    threads: str  # the thread count chosen and why
    budget: TimeBudget | None = None

    def details(self) -> dict:
        """Why the run runs as it does: the precision, the thread count (with what was measured) and the CPU's vector
        instructions, in words (metrics.json keeps them as `startup`)."""
        t = self.trainer
        return {
            "precision": precision_reason(self.cfg.precision, t.device, t.precision),
            "threads": self.threads,
            "cpu_isa": cpu_isa(),
        }

    def startup_lines(self, verbose: int = 1) -> list[str]:
        """'model: lenet5 (61,706 parameters) on cpu, fp32, 2 threads': one short line (`MODEL_NAME_CHARS` of a
        long notation model's name); --verbose 2 adds the details, one a line."""
        t, name = self.trainer, self.cfg.model
        if len(name) > MODEL_NAME_CHARS:
            name = name[: MODEL_NAME_CHARS - 1] + "…"
        params = sum(p.numel() for p in self.model.parameters())
        threads = t.threads if isinstance(t.threads, int) else torch.get_num_threads()  # as chosen in `build`
        line = f"model: {name} ({params:,} parameters) on {t.device}, {t.precision}, {plural(threads, 'thread')}"
        if verbose < 2:
            return [f"{line} (why: --verbose 2)"]
        details = self.details()
        return [
            line,
            f"  precision {details['precision']}",
            f"  {details['threads']}",
            f"  CPU ISA {details['cpu_isa']}",
        ]


def check(cfg: TrainConfig) -> None:
    """What needs no data, checked before any is loaded and before a run folder exists: a failed start leaves
    nothing behind."""
    cfg.validate()
    if not is_model(cfg.model):
        create_model(cfg.model)  # raises the registry's error, with close names
    resolve_precision(cfg.precision, resolve_device(cfg.device))
    if cfg.init_from is not None:
        check_source(cfg.init_from)


def build(
    cfg: TrainConfig,
    device: torch.device,
    callbacks: list | None = None,
    log=print,
    folder: RunFolder | None = None,
    clock: Callable[[], float] = process_seconds,
) -> Setup:
    """The whole set-up of a checked `cfg` on `device` (see `check`).

    folder: the run folder the checkpoint, CSV log and TensorBoard files go to (None: none of them, as for
    lr-find); `callbacks` are added to the run's own (LR schedule, NaN guard, early stopping, time limit, progress).
    clock: the seconds the job has spent so far, which a time budget counts.
    """
    rank, world = distributed.rank(), distributed.world_size()
    torch.manual_seed(cfg.seed)
    record = data_record(cfg)
    splits = load_splits(record, cfg.mode, cfg.image_size, target=get_task(cfg.task).target)
    _describe(splits, log)
    if cfg.patience is not None and splits.val is None:
        raise ValueError("--patience needs validation data: set --val-split above 0")
    task = make_task(cfg.task, splits.classes, splits.image_shape, **cfg.task_args)
    model = _model(cfg, splits, device, task)
    precision = resolve_precision(cfg.precision, device)
    channels_last = use_channels_last(device, precision)
    mean, std = channel_stats(decoded(splits.train).images)  # a streamed set: of its decoded sample
    normalize = Normalize(mean, std)
    params, init_from, callbacks = model, None, list(callbacks or [])
    if cfg.init_from is not None:  # transfer learning: trained weights, a new head, the backbone at a lower LR
        params, init_from, callbacks = _init_from(cfg, model, splits, normalize, task, callbacks, log)
    loss_fn = task.loss(cfg.label_smoothing)
    probe = _probe_batch(splits, normalize, cfg.batch_size, device, channels_last)
    threads, step_estimate = _choose_threads(cfg, model, loss_fn, probe, device, precision, channels_last)
    budget = _budget(cfg, splits, probe[0], step_estimate, log, clock)
    if folder is not None:  # a run (not lr-find): its schedule, guards, checkpoint and logs
        identity = data_identity(splits)
        extra = {"config": cfg.to_dict(), "data": identity, "world_size": world}
        callbacks += _run_callbacks(cfg, folder, extra, log, budget)
    if budget is not None:
        callbacks.append(budget)
    # each rank its own augmentation stream (rank 0's is the single process's)
    augment = None
    if cfg.augment:
        augment = Augment(cfg.augment, len(splits.classes), seed=cfg.seed + 2 + 7919 * rank, device=device)
    optimizer = build_optimizer(
        cfg.optimizer, params, cfg.lr, cfg.momentum, cfg.nesterov, cfg.weight_decay, cfg.decay_all
    )
    trainer = Trainer(
        model,
        optimizer,
        loss_fn,
        device,
        precision,
        callbacks,
        accumulate=0 if cfg.optimizer in FULL_BATCH else cfg.accumulate,  # 0: the whole epoch per step
        grad_clip=cfg.grad_clip,
        mix=augment.mix if augment is not None and augment.mixes else None,
        compile=cfg.compile,
        task=task,
        threads=torch.get_num_threads(),  # as chosen above
    )
    if augment is not None:
        trainer.track("augment", augment)
    train_loader, val_loader = _loaders(cfg, splits, normalize, augment, device, task)
    meta = RunMeta.for_model(
        model,
        classes=list(splits.classes),
        input_size=list(splits.image_shape),
        mean=mean,
        std=std,
        precision=precision,
        tta=cfg.tta,
        dataset=splits.name,
        data=record.to_dict(),
        init_from=init_from,
        task=cfg.task,
        task_args=dict(cfg.task_args),
    )
    return Setup(cfg, splits, model, trainer, train_loader, val_loader, meta, threads, budget)


def _loaders(cfg: TrainConfig, splits: DataSplits, normalize: Normalize, augment: Augment | None, device, task: Task):
    """The training loader (augmented, shuffled by its own stream) and the validation loader (normalized only).

    The data order stream is separate from the init stream (seed) and the augmentation stream (seed + 2).
    Distributed: the same order on every rank, each rank its share of every global batch of --batch-size.
    A task whose targets are boxes or masks has them moved with the pixels (`Augment.transform`).
    """
    rank, world = distributed.rank(), distributed.world_size()
    moves = augment is not None and task.target != "label"
    transform = Compose([augment, normalize]) if augment is not None and not moves else normalize
    source = StreamingFolderLoader if isinstance(splits.train, FileSet) else InMemoryLoader
    extra = {"pair_transform": functools.partial(augment.transform, kind=task.target)} if moves else {}
    train = source(
        splits.train,
        cfg.batch_size,
        shuffle=True,
        transform=transform,
        device=device,
        seed=cfg.seed + 1,
        rank=rank,
        world=world,
        **extra,
    )
    val = None
    if splits.val is not None:
        val = InMemoryLoader(splits.val, 500, transform=normalize, device=device, rank=rank, world=world)
    return train, val


def data_identity(splits: DataSplits) -> dict:
    """What a checkpoint records of the data, so that a resume on other data is refused."""
    return {
        "dataset": splits.name,
        "train_images": len(splits.train),
        "classes": list(splits.classes),
        "input_size": list(splits.image_shape),
    }


def _describe(splits: DataSplits, log) -> None:
    for note in splits.notes:
        log(note)
    c, h, w = splits.image_shape
    sizes = (len(s) if s is not None else 0 for s in (splits.train, splits.val, splits.test))
    kind = getattr(splits.train, "kind", "label")
    targets = "" if kind == "label" else f"; targets: {KINDS[kind]}"
    log(
        f"data: {splits.name} from {splits.source} — train {next(sizes):,}, val {next(sizes):,}, "
        f"test {next(sizes):,}; {c}×{h}×{w}, {len(splits.classes)} classes{targets}"
    )


def _model(cfg: TrainConfig, splits: DataSplits, device: torch.device, task: Task) -> nn.Module:
    """The model of `cfg` for these data (classes, channels, size) and its task, initialized as asked."""
    c, h, w = splits.image_shape
    if h != w:
        raise ValueError(f"images are {w}×{h}; cnnlab models take square inputs: pass --image-size")
    args = {"img_size": h, **cfg.model_args}
    try:
        model = create_model(cfg.model, num_classes=len(splits.classes), in_chans=c, **args)
    except ValueError as e:
        if "too small" not in str(e):
            raise
        raise ValueError(
            f"{cfg.model} cannot take {w}×{h} inputs ({e}); resize them with --image-size, e.g. 32 or 64"
        ) from None
    model = task.build(model)  # a classifier is the network itself; another task puts its head on the features
    if cfg.init is not None:
        init_weights(model, cfg.init)
    if cfg.sync_bn and distributed.world_size() > 1:
        model = distributed.sync_batchnorm(model, device)
    return model


def _init_from(
    cfg: TrainConfig, model: nn.Module, splits: DataSplits, normalize: Normalize, task: Task, callbacks, log
):
    """Load `cfg.init_from` into `model`; returns the optimizer's parameter groups, what the run records about the
    source, and the callbacks with the freeze schedule added.

    A classifier's run first checks that the source fits (`fit_check`): where its features separate a sample of the
    training images less well than the fresh model's own, the model keeps its fresh weights and trains as from
    scratch (unless --init-always); the record says so."""
    source = read_source(cfg.init_from)

    def load():
        return load_pretrained(model, source, splits.classes, strict=cfg.init_strict, log=log, new_fc=not cfg.keep_fc)

    check, train = None, None
    if not cfg.init_always and task.name == "classify" and len(splits.classes) > 1:
        train = decoded(splits.train)
    if train is None or len(train) < 2 * len(splits.classes):  # no check, or too few images to score
        report = load()
    else:
        check, report = check_fit(model, load, train.images, train.labels, normalize, not cfg.keep_fc, cfg.seed)
        log(f"  {check.line()}")
    info = {**source.describe(), "report": report.to_dict()}
    if check is not None:
        info["fit_check"] = check.to_dict()
        if not check.fits:
            return model, {**info, "transferred": False}, callbacks
    head = report.head_names(model)  # the classifier and the new fully connected layers: trained from the start
    groups = param_groups(model, cfg.lr, cfg.weight_decay, cfg.backbone_lr_mult, cfg.decay_all, head=head)
    freeze = cfg.freeze or "features"
    if cfg.freeze_epochs > 0 and freeze != "none":
        callbacks = [*callbacks, FreezeSchedule(freeze, cfg.freeze_epochs, log, head=head)]
    info |= {
        "transferred": True,
        "freeze": freeze,
        "freeze_epochs": cfg.freeze_epochs,
        "backbone_lr_mult": cfg.backbone_lr_mult,
        "keep_fc": cfg.keep_fc,
    }
    return groups, info, callbacks


def _run_callbacks(cfg: TrainConfig, folder: RunFolder, extra: dict, log, budget: TimeBudget | None) -> list:
    """A run's own callbacks; each one's `order` places it (stateful ones before the checkpoint, the CSV row after
    it), not this list. The progress bar (which shows the time budget's epochs its own way) and the files are rank
    0's."""
    end_ratio = cfg.lr_end / cfg.lr if cfg.lr_end is not None else None
    shape = {"pct_start": cfg.pct_start} if cfg.pct_start is not None else {}
    schedule = LRScheduler(
        cfg.schedule,
        cfg.schedule_unit,
        cfg.warmup,
        patience=cfg.plateau_patience,
        end_ratio=end_ratio,
        decay_length=cfg.decay_length,
        step_size=cfg.step_size,
        gamma=cfg.gamma,
        **shape,
    )
    out = [schedule, TerminateOnNaN()]
    if cfg.patience is not None:
        out.append(EarlyStopping("val_loss", cfg.patience, restore_best=True))
    if cfg.time_limit is not None:
        out.append(TimeLimit(cfg.time_limit))
    saves = log if cfg.verbose >= 2 else None
    out.append(Checkpoint(folder.checkpoint, cfg.checkpoint_every, folder.best, extra=extra, log=saves))
    if not folder.main:
        return out
    out += [ProgressBar(verbose=cfg.verbose, budget=budget), CSVLogger(folder.path / "history.csv")]
    if cfg.tensorboard:
        try:
            out.append(TensorBoard(folder.path / "tensorboard"))
        except ImportError as e:
            warnings.warn(f"{e}; training without event files", stacklevel=2)
    return out


def _probe_batch(
    splits: DataSplits, normalize: Normalize, batch_size: int, device: torch.device, channels_last: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first training images as model input (one batch at most), for measurements: read without drawing from
    any random stream (the loader's order and the augmentation stay exactly as an unmeasured run has them)."""
    train = decoded(splits.train)
    n = min(batch_size, len(train))
    x = normalize(train.images[:n].to(device))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, train.labels[:n].to(device)


def _choose_threads(cfg, model, loss_fn, probe, device, precision, channels_last) -> tuple[str, float | None]:
    """Set the CPU thread count (`train.probe.choose_training_threads`: --threads, $CNNLAB_THREADS, else measured
    on a copy of the model). Returns what was chosen and why (one phrase), and the measured seconds per training
    step of a full batch (a first estimate for a time budget), when it was measured."""
    if device.type != "cpu":
        return f"threads {torch.get_num_threads()} (CPU side of a {device.type} run)", None
    choice = choose_training_threads(model, loss_fn, *probe, device, precision, channels_last, asked=cfg.threads)
    if not choice.times:
        return choice.describe(), None
    samples = min(len(probe[0]), PROBE_SAMPLES)
    step_s = choice.times[choice.threads] * cfg.batch_size / samples * 1.3  # the probe has no optimizer step
    return choice.describe(), step_s


def _budget(cfg: TrainConfig, splits: DataSplits, probe: torch.Tensor, step_estimate, log, clock) -> TimeBudget | None:
    """The time budget's callback: it keeps time for the per-epoch validation and the final evaluation (the
    held-out split, and the validation split the run's val_accuracy is measured on; twice each with flip TTA)."""
    if cfg.time_budget is None:
        return None
    val = len(splits.val) if splits.val is not None else 0
    held = splits.held_out()
    final = val + (len(held[1]) if held is not None and held[0] == "test" else 0)
    return TimeBudget(
        parse_duration(cfg.time_budget),
        clock,
        probe=probe,
        val_samples=val,
        post_samples=final * (2 if cfg.tta else 1),
        estimate_step_s=step_estimate,
        log=log,
    )
