"""Typed run configuration, filled from defaults, a YAML/TOML/JSON file and CLI flags (in that order).

`TrainConfig` is the one place a training option is defined: its type, its default and its help text
(`field(metadata={"help": ...})`). `coerce` turns a file value or a flag's text into the field's type; both
`TrainConfig.from_dict` and the CLI (`cnnlab train` builds its flags from the fields) use it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml


def option(default: typing.Any = dataclasses.MISSING, help_: str = "", **kw) -> typing.Any:
    """A TrainConfig field with its help text (shown by `cnnlab train --help`; units belong in it)."""
    return field(default=default, metadata={"help": help_}, **kw)


# value ranges of numeric options (None = unset is always fine): (lower test, upper test, what to say)
_RANGES = {
    "val_split": (lambda v: v >= 0, lambda v: True, "≥ 0 (a count of images, or a fraction below 1)"),
    "image_size": (lambda v: v >= 1, lambda v: v <= 4096, "between 1 and 4096 pixels"),
    "momentum": (lambda v: v >= 0, lambda v: v < 1, "in [0, 1)"),
    "weight_decay": (lambda v: v >= 0, lambda v: True, "≥ 0"),
    "grad_clip": (lambda v: v > 0, lambda v: True, "> 0"),
    "warmup": (lambda v: v >= 0, lambda v: True, "≥ 0 schedule units"),
    "lr_end": (lambda v: v >= 0, lambda v: True, "≥ 0"),
    "pct_start": (lambda v: v > 0, lambda v: v < 1, "in (0, 1) (a share of the run)"),
    "decay_length": (lambda v: v >= 1, lambda v: True, "≥ 1 schedule units"),
    "step_size": (lambda v: v >= 1, lambda v: True, "≥ 1 schedule units"),
    "gamma": (lambda v: v > 0, lambda v: v <= 1, "in (0, 1] (the factor the LR is multiplied by)"),
    "plateau_patience": (lambda v: v >= 1, lambda v: True, "≥ 1 epochs"),
    "label_smoothing": (lambda v: v >= 0, lambda v: v < 1, "in [0, 1)"),
    "patience": (lambda v: v >= 1, lambda v: True, "≥ 1 epochs"),
    "checkpoint_every": (lambda v: v >= 1, lambda v: True, "≥ 1 steps"),
    "freeze_epochs": (lambda v: v >= 0, lambda v: True, "≥ 0"),
    "backbone_lr_mult": (lambda v: v >= 0, lambda v: True, "≥ 0"),
}
DEFAULT_EPOCHS = 5
BUDGET_EPOCH_CAP = 10_000  # a time budget without --epochs: the budget, not this, ends the run


@dataclass
class TrainConfig:
    # data
    data: str = option(
        "fashion-mnist",
        "dataset name (fashion-mnist, mnist, cifar10) or folder:PATH, npz:PATH, csv:PATH; with boxes yolo:PATH, "
        "coco:PATH",
    )
    data_dir: str | None = option(None, "folder holding the dataset's official files (searched first)")
    val_split: int | float | None = option(
        None,
        "validation samples carved from train: a count, or a fraction in (0, 1) "
        "(default: 5000 for the 60k sets, else 10 %)",
    )
    image_size: int | None = option(None, "resize every image to SIZE×SIZE pixels (default: keep the data's size)")
    mode: str | None = option(None, "convert images to L (grayscale) or RGB (default: keep the data's own)")
    strict: bool = option(False, "fail on unreadable image files instead of skipping them with a warning")
    max_train_samples: int | None = option(None, "train on the first N training images (quick trials)")
    # model
    model: str = option(
        "lenet5", "model name (see `cnnlab models`) or course notation, e.g. CL32-MP4-CL64-MP4-FC512-FC10"
    )
    model_args: dict = option(
        help_="extra model constructor arguments, e.g. {drop_rate: 0.3}; on the command line --model-arg KEY=VALUE "
        "(repeatable)",
        default_factory=dict,
    )
    task: str = option(
        "classify",
        "what the model learns: classify (a class per image), localize (the class and box of the one object in "
        "each image) or detect (class, score and box of every object), reading --data yolo:PATH or coco:PATH; or "
        "segment (a class per pixel; --data masks:PATH)",
    )
    task_args: dict = option(
        help_="the task's own arguments, e.g. {grid: 4, hidden: 256} for localize's head, {grid: 8, score: 0.3} for "
        "detect's, {decoder: fcn} for segment's; on the command line --task-arg KEY=VALUE (repeatable)",
        default_factory=dict,
    )
    init: str | None = option(
        None,
        "re-initialize the weights: glorot_uniform, glorot_normal, he_uniform, he_normal or torch "
        "(default: the model's own initialization)",
    )
    # transfer learning (start from trained weights)
    init_from: str | None = option(
        None,
        "start from trained weights: a cnnlab run folder or model file, or a torchvision / timm weight file "
        "(.pth/.pt read without running code, .safetensors); a cnnlab source also gives the architecture (--model "
        "for the others); the classifier is new unless the classes are the same",
    )
    init_strict: bool = option(False, "with --init-from: any missing, unexpected or wrong-shape tensor is an error")
    freeze: str | None = option(
        None,
        "with --init-from: what stays frozen for the first --freeze-epochs epochs: features (all but the "
        "classifier), none, N (the first N blocks) or module name prefixes, e.g. conv1,bn1,layer1 (default: features)",
    )
    freeze_epochs: int = option(
        1, "with --init-from: epochs with --freeze frozen before the whole model trains; ≥ --epochs: head only"
    )
    keep_fc: bool = option(
        False,
        "with --init-from: load the source's fully connected layers below the classifier too (default: they start "
        "new, as in fastai's cnn_learner: LeNet-5 at 10 images per class +0.4 to +2.0 points over loading them, "
        "BENCHMARKS.md 'Fine-tuning defaults')",
    )
    init_always: bool = option(
        False,
        "with --init-from: start from the source even where its features separate the training images' classes "
        "less well than a fresh network's (by default such a run trains from scratch: the fit check, "
        "BENCHMARKS.md 'Fine-tuning defaults')",
    )
    backbone_lr_mult: float = option(
        1.0,
        "with --init-from: LR of everything but the classifier, as a multiple of --lr, once it trains (default 1: "
        "0.1 lost 2–14 points to training from scratch on small models, BENCHMARKS.md 'Fine-tuning defaults')",
    )
    # optimization
    epochs: int | None = option(
        None, "passes over the training set (default: 5; with --time-budget, as many as fit in the budget)"
    )
    batch_size: int = option(128, "samples per batch (one optimizer step sees batch-size × accumulate samples)")
    optimizer: str = option("adam", "gd (full-batch gradient descent: one step per pass), sgd, adam, adamw or rmsprop")
    lr: float = option(1e-3, "learning rate per optimizer step (the schedule's peak)")
    momentum: float | None = option(None, "momentum for gd / sgd / rmsprop (default: 0.9, or 0 for gd)")
    nesterov: bool = option(False, "Nesterov momentum for sgd")
    weight_decay: float = option(
        0.0, "L2 penalty (decoupled for adamw); biases and norm parameters are exempt unless --decay-all"
    )
    decay_all: bool = option(False, "apply weight decay to biases and norm parameters too")
    grad_clip: float | None = option(None, "clip the gradient to this global L2 norm before each step")
    accumulate: int = option(1, "batches whose gradients are summed into one optimizer step")
    # learning-rate schedule
    schedule: str = option(
        "constant", "constant, linear (ε_k = (1−k/τ)ε_0 + (k/τ)ε_τ), step, cosine, onecycle or plateau"
    )
    schedule_unit: str = option("step", "the schedule's k counts optimizer steps (step) or epochs (epoch)")
    warmup: int = option(0, "linear warm-up before the schedule, in schedule units")
    lr_end: float | None = option(
        None, "final LR: linear ε_τ (default: lr/100), cosine floor (0 if unset), onecycle end (lr/25/1e4 if unset)"
    )
    pct_start: float | None = option(
        None, "onecycle: the share of the run spent rising to the peak LR (default 0.3, as torch's OneCycleLR)"
    )
    decay_length: int | None = option(
        None, "τ: length of the linear decay / cosine, in schedule units (default: the rest of the run)"
    )
    step_size: int | None = option(
        None, "step schedule: multiply the LR by --gamma every this many schedule units (default: a third of the run)"
    )
    gamma: float = option(0.1, "LR factor of the step and plateau schedules")
    plateau_patience: int = option(2, "plateau schedule: epochs without val_loss improvement before the LR drops")
    # regularization
    label_smoothing: float = option(0.0, "label smoothing of the cross-entropy targets (0 = none)")
    augment: str | None = option(
        None,
        "training-batch augmentation, e.g. flip,translate=2,rotate=10,scale=0.1,erase=0.5,cutout=8,mixup=0.2,"
        "cutmix=1 (default: none; `cnnlab augment --list` shows the names)",
    )
    tta: bool = option(
        False,
        "flip test-time augmentation: the final evaluation (and evaluate / predict on the run) averages the "
        "logits of each image and its mirror",
    )
    patience: int | None = option(
        None, "early stopping: stop after this many epochs without val_loss improvement and keep the best weights"
    )
    # execution
    seed: int = option(0, "random seed for initialization, validation split, data order and augmentation")
    device: str = option("auto", "auto, cpu or cuda")
    precision: str = option("auto", "auto (bf16 where the hardware does it fast), fp32 or bf16")
    compile: str = option(
        "off",
        "torch.compile the training forward pass: off, default, reduce-overhead (CUDA graphs on a GPU) or "
        "max-autotune; on a CPU it was slower for the course's CNN, so measure first",
    )
    sync_bn: bool = option(
        False, "distributed runs (torchrun, --nproc): BatchNorm statistics over the global batch (SyncBatchNorm, CUDA)"
    )
    stream: bool = option(
        False,
        "folder:PATH data: decode images from disk batch by batch with DataLoader workers instead of loading them "
        "all into memory (automatic for folders over 2 GB of decoded images)",
    )
    out: str | None = option(None, "run folder to create (default: runs/<model>-<data>-<time>)")
    overwrite: bool = option(False, "reuse an existing run folder")
    checkpoint_every: int | None = option(
        None, "also write the resume checkpoint every this many optimizer steps (it is written every epoch anyway)"
    )
    time_limit: str | None = option(
        None, "stop training after this long (90, 60s, 5m, 1.5h; a number is seconds), then evaluate and save as usual"
    )
    time_budget: str | None = option(
        None,
        "finish the whole run, test evaluation included, within this wall time from process start (30s, 3m, 1h): "
        "the step rate is measured in the first steps and whole-run LR schedules are laid out over the steps that "
        "fit; with --epochs, whichever ends first",
    )
    threads: int | None = option(
        None,
        "CPU threads (default: measured at start — one per core, or one when another process keeps a core busy)",
    )
    tensorboard: bool = option(
        False, "write TensorBoard event files to <run>/tensorboard (pip install 'cnnlab[tensorboard]')"
    )
    verbose: int = option(
        1, "0 silences the progress bar; 2 also says why the precision and thread count, and logs each checkpoint"
    )

    @property
    def max_epochs(self) -> int:
        """Epochs to run at most: --epochs, else 5, else (with a time budget) as many as the budget allows."""
        if self.epochs is not None:
            return self.epochs
        return BUDGET_EPOCH_CAP if self.time_budget is not None else DEFAULT_EPOCHS

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """A config from file values (YAML, TOML, JSON) or a saved config.json; each value is `coerce`d."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown config key(s): {', '.join(unknown)}; valid keys: {', '.join(sorted(names))}")
        return cls(**{name: coerce(name, value) for name, value in values.items()})

    def validate(self) -> TrainConfig:
        """Check names and combinations before any work starts; errors say what to do instead."""
        from cnnlab.data.augment import parse_spec
        from cnnlab.layers import INIT_SCHEMES
        from cnnlab.runtime import compile_mode
        from cnnlab.train.callbacks.time_limit import parse_duration
        from cnnlab.train.optim import FULL_BATCH, OPTIMIZERS
        from cnnlab.train.schedules import SCHEDULES, UNITS

        for key, valid in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES), ("schedule_unit", UNITS)):
            if getattr(self, key) not in valid:
                raise ValueError(
                    f"unknown --{key.replace('_', '-')} '{getattr(self, key)}'; choose from {', '.join(valid)}"
                )
        self._validate_task()
        if self.init is not None and self.init not in INIT_SCHEMES:
            raise ValueError(f"unknown --init '{self.init}'; choose from {', '.join(INIT_SCHEMES)}")
        parse_spec(self.augment)
        self.compile = compile_mode(self.compile)
        for key in ("time_limit", "time_budget"):
            if getattr(self, key) is not None:
                parse_duration(getattr(self, key))
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"--threads must be ≥ 1, got {self.threads}")
        for key in ("epochs", "batch_size", "accumulate", "max_train_samples"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise ValueError(f"--{key.replace('_', '-')} must be ≥ 1, got {getattr(self, key)}")
        if self.lr <= 0:
            raise ValueError(f"--lr must be > 0, got {self.lr}")
        for key, (low, high, text) in _RANGES.items():
            value = getattr(self, key)
            if value is not None and not (math.isfinite(value) and low(value) and high(value)):
                raise ValueError(f"--{key.replace('_', '-')} must be {text}, got {value}")
        if self.val_split is not None and not (0 <= self.val_split < 1 or float(self.val_split).is_integer()):
            raise ValueError(f"--val-split is a count of images or a fraction in [0, 1), got {self.val_split}")
        if self.init_from is None and (self.freeze is not None or self.init_strict or self.keep_fc or self.init_always):
            raise ValueError(
                "--freeze, --init-strict, --keep-fc and --init-always apply to a run started with --init-from SOURCE"
            )
        if self.patience is not None and self.val_split == 0:
            raise ValueError(
                "--patience watches the validation loss, but --val-split 0 leaves no validation data: "
                "give --val-split (e.g. 5000 or 0.1) or drop --patience"
            )
        if self.optimizer in FULL_BATCH and self.accumulate != 1:
            raise ValueError(
                f"--accumulate does not go with --optimizer {self.optimizer}, which already accumulates "
                "the whole training set into one step"
            )
        if self.nesterov and (self.optimizer not in ("sgd", "gd") or self.momentum == 0):
            raise ValueError(f"--nesterov needs --optimizer sgd with momentum > 0 (got {self.optimizer})")
        needs = {
            "lr_end": ("linear", "cosine", "onecycle"),
            "pct_start": ("onecycle",),
            "decay_length": ("linear", "cosine"),
            "step_size": ("step",),
        }
        for key, schedules in needs.items():
            if getattr(self, key) is not None and self.schedule not in schedules:
                raise ValueError(
                    f"--{key.replace('_', '-')} applies to --schedule {' / '.join(schedules)}, not {self.schedule}"
                )
        return self

    def _validate_task(self) -> None:
        """The task exists, and what phase 1 of the tasks does not do yet is refused before any work starts."""
        from cnnlab.data.augment import parse_spec
        from cnnlab.data.load import BOX_SOURCES, MASK_SOURCES
        from cnnlab.tasks import get_task

        task = get_task(self.task)
        unknown = sorted(set(self.task_args) - set(task.ARGS))
        if unknown:
            takes = ", ".join(task.ARGS) or "no arguments"
            raise ValueError(f"--task {task.name} does not take {', '.join(unknown)}; it takes {takes}")
        if task.name == "classify":
            return
        if task.target == "mask" and self.data.partition(":")[0] not in MASK_SOURCES:
            raise ValueError(
                f"--task {task.name} reads masks: --data masks:PATH, not {self.data} "
                "(`cnnlab datasets make fashion-scenes --masks --out DIR` writes a scene set with masks)"
            )
        if task.target != "mask" and self.data.partition(":")[0] not in BOX_SOURCES:  # before any data are read
            raise ValueError(
                f"--task {task.name} reads boxes: --data yolo:PATH or coco:PATH, not {self.data} "
                "(`cnnlab datasets make fashion-scenes --out DIR` writes a scene set)"
            )
        if {"mixup", "cutmix"} & set(parse_spec(self.augment)):
            raise ValueError(f"mixup and cutmix mix class labels; --task {task.name} cannot use them")
        for key, what in (("stream", "--stream"), ("init_from", "--init-from")):
            if getattr(self, key):
                raise ValueError(f"{what} is for --task classify so far, not {task.name}")


@functools.cache
def _field_kinds() -> dict[str, tuple[tuple[type, ...], bool]]:
    """Field name → (its types without None, whether None is allowed), from the annotations."""
    out = {}
    for name, hint in typing.get_type_hints(TrainConfig).items():
        union = isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
        args = typing.get_args(hint) if union else (hint,)
        kinds = tuple(a for a in args if a is not type(None))
        out[name] = (kinds, len(kinds) < len(args))
    return out


def _name(f: dataclasses.Field | str) -> str:
    return f if isinstance(f, str) else f.name


def kind_name(f: dataclasses.Field | str) -> str:
    """The value type of field `f` in words: int, float, number (a count or a fraction), str, bool or dict."""
    kinds = _field_kinds()[_name(f)][0]
    return "number" if kinds == (int, float) else kinds[0].__name__


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def coerce(f: dataclasses.Field | str, value: typing.Any) -> typing.Any:
    """`value` as the type of TrainConfig field `f` (a Field or its name); ValueError names the field.

    The one parser of option values: a flag's text, or a file's value (YAML reads 1e-4 as a string, and a
    whole number where a float is meant). An `int | float` field (val_split) takes a whole number as a count.
    None stays None for the fields that allow it.
    """
    name = _name(f)
    kinds, optional = _field_kinds()[name]
    if value is None:
        if optional:
            return None
        raise ValueError(f"{name}: expected {kind_name(name)}, got no value")
    if kinds == (bool,):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise ValueError(f"{name}: expected true or false, got '{value}'")
    if kinds == (str,):  # a number becomes its text (time_limit: 90); YAML's on/off booleans pass (compile: off)
        return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    if kinds == (dict,):
        if not isinstance(value, dict):
            raise ValueError(f"{name}: expected a mapping of keys to values, got '{value}'")
        return value
    number = value
    if isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            try:
                number = float(value.strip())
            except ValueError:
                raise ValueError(f"{name}: expected a number, got '{value}'") from None
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        raise ValueError(f"{name}: expected a number, got '{value}'")
    whole = float(number).is_integer()
    if kinds == (float,):
        return float(number)
    if kinds == (int,) and not whole:
        raise ValueError(f"{name}: expected a whole number, got '{value}'")
    return int(number) if whole else number  # int, or int | float: a whole number is a count


def help_text(f: dataclasses.Field) -> str:
    """The field's help with its default said once: the help's own "(default: …)" if it has one, else the
    field default (none for None; nothing for on/off flags, which are off by default)."""
    text = f.metadata.get("help", "")
    if "(default" in text or f.default is False or f.default is dataclasses.MISSING:
        return text
    return f"{text} (default: {'none' if f.default is None else f.default})"


def read_config_file(path: str | Path) -> dict:
    """Read a YAML, TOML or JSON file of TrainConfig keys (dashes allowed instead of underscores)."""
    path = Path(path)
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text file (a YAML, TOML or JSON config is expected)") from None
    try:
        if path.suffix == ".toml":
            values = tomllib.loads(text)
        elif path.suffix == ".json":
            values = json.loads(text)
        else:
            values = yaml.safe_load(text) or {}
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path}: invalid TOML: {e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ValueError(f"{path}: invalid YAML{where}: {getattr(e, 'problem', None) or e}") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping of config keys, got {type(values).__name__}")
    return {k.replace("-", "_"): v for k, v in values.items()}
