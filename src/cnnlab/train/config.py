"""Typed run configuration, filled from defaults, a YAML/TOML/JSON file and CLI flags (in that order)."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import yaml


@dataclass
class TrainConfig:
    # data
    data: str = "fashion-mnist"  # name, or folder:PATH / npz:PATH / csv:PATH
    data_dir: str | None = None
    val_split: float | None = None  # count, or fraction in (0, 1); None → 5,000 for the 60 k sets, else 10 %
    image_size: int | None = None  # resize every image to this square size (pixels)
    mode: str | None = None  # 'L' or 'RGB'; None keeps the data's own
    strict: bool = False  # unreadable image files are an error instead of a warning
    # model
    model: str = "lenet5"
    model_args: dict = field(default_factory=dict)  # extra constructor arguments, e.g. {"drop_rate": 0.3}
    init: str | None = None  # re-initialize weights: glorot_uniform, glorot_normal, he_uniform, he_normal, torch
    # optimization
    epochs: int = 5
    batch_size: int = 128  # samples per batch (the step's batch is batch_size × accumulate)
    optimizer: str = "adam"  # gd (full batch), sgd, adam, adamw, rmsprop
    lr: float = 1e-3  # per optimizer step, the schedule's peak
    momentum: float | None = None  # None → 0.9 for sgd / rmsprop, 0 for gd
    nesterov: bool = False
    weight_decay: float = 0.0  # L2 penalty; decoupled for adamw
    decay_all: bool = False  # also decay biases and norm parameters (by default they are exempt)
    grad_clip: float | None = None  # largest global L2 norm of the gradient
    accumulate: int = 1  # batches per optimizer step
    # learning-rate schedule
    schedule: str = "constant"  # constant, linear, step, cosine, onecycle, plateau
    schedule_unit: str = "step"  # the schedule's k counts optimizer steps or epochs
    warmup: int = 0  # linear warm-up, in schedule units
    lr_end: float | None = None  # final LR: linear ε_τ (default lr/100), cosine floor (0), onecycle (lr/25/1e4)
    decay_length: int | None = None  # τ of the linear decay / cosine length, in units (default: the rest of the run)
    step_size: int | None = None  # step decay every this many units (default: a third of the run)
    gamma: float = 0.1  # step decay / plateau factor
    plateau_patience: int = 2  # epochs without improvement before a plateau reduction
    # regularization
    label_smoothing: float = 0.0
    augment: str | None = None  # e.g. "flip,translate=2,rotate=10,erase=0.25,mixup=0.2" (see cnnlab.data.augment)
    tta: bool = False  # flip test-time augmentation in the final evaluation (and in evaluate / predict of the run)
    patience: int | None = None  # early stopping on val_loss after this many epochs without improvement
    # execution
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    compile: str = "off"  # torch.compile the training forward: see precision.COMPILE_MODES
    out: str | None = None  # run folder; None → runs/<model>-<data>-<time>
    overwrite: bool = False
    checkpoint_every: int | None = None  # also write the resume checkpoint every this many optimizer steps
    time_limit: str | None = None  # stop training after this long (90, 60s, 5m, 1.5h), then evaluate
    tensorboard: bool = False  # TensorBoard event files in <run>/tensorboard (needs the tensorboard extra)
    verbose: int = 1

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown config key(s): {', '.join(unknown)}; valid keys: {', '.join(sorted(names))}")
        for f in dataclasses.fields(cls):  # YAML reads 1e-4 as a string (no dot): numbers by the field's type
            value = values.get(f.name)
            if isinstance(value, str) and str(f.type).split(" |")[0] in ("float", "int"):
                try:
                    values[f.name] = float(value) if str(f.type).startswith("float") else int(value)
                except ValueError:
                    raise ValueError(f"{f.name}: expected a number, got '{value}'") from None
        return cls(**values)

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
        if self.init is not None and self.init not in INIT_SCHEMES:
            raise ValueError(f"unknown --init '{self.init}'; choose from {', '.join(INIT_SCHEMES)}")
        parse_spec(self.augment)
        self.compile = compile_mode(self.compile)
        if self.time_limit is not None:
            parse_duration(self.time_limit)
        for key in ("epochs", "batch_size", "accumulate"):
            if getattr(self, key) < 1:
                raise ValueError(f"--{key.replace('_', '-')} must be ≥ 1, got {getattr(self, key)}")
        if self.lr <= 0:
            raise ValueError(f"--lr must be > 0, got {self.lr}")
        if self.patience is not None and self.val_split == 0:
            raise ValueError("--patience watches the validation loss, but --val-split 0 leaves no validation data: "
                             "give --val-split (e.g. 5000 or 0.1) or drop --patience")  # fmt: skip
        if self.optimizer in FULL_BATCH and self.accumulate != 1:
            raise ValueError(f"--accumulate does not go with --optimizer {self.optimizer}, which already accumulates "
                             "the whole training set into one step")  # fmt: skip
        if self.nesterov and (self.optimizer not in ("sgd", "gd") or self.momentum == 0):
            raise ValueError(f"--nesterov needs --optimizer sgd with momentum > 0 (got {self.optimizer})")
        needs = {"lr_end": ("linear", "cosine", "onecycle"), "decay_length": ("linear", "cosine"),
                 "step_size": ("step",)}  # fmt: skip
        for key, schedules in needs.items():
            if getattr(self, key) is not None and self.schedule not in schedules:
                raise ValueError(f"--{key.replace('_', '-')} applies to --schedule {' / '.join(schedules)}, "
                                 f"not {self.schedule}")  # fmt: skip
        return self


def read_config_file(path: str | Path) -> dict:
    """Read a YAML, TOML or JSON file of TrainConfig keys (dashes allowed instead of underscores)."""
    path = Path(path)
    text = path.read_text()
    if path.suffix == ".toml":
        values = tomllib.loads(text)
    elif path.suffix == ".json":
        values = json.loads(text)
    else:
        values = yaml.safe_load(text) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping of config keys, got {type(values).__name__}")
    return {k.replace("-", "_"): v for k, v in values.items()}
