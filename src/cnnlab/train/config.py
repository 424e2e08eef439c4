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
    # optimization
    epochs: int = 5
    batch_size: int = 128  # samples per step
    optimizer: str = "adam"
    lr: float = 1e-3  # per step
    momentum: float = 0.9  # SGD / RMSprop
    nesterov: bool = False
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    patience: int | None = None  # early stopping on val_loss after this many epochs without improvement
    # execution
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    out: str | None = None  # run folder; None → runs/<model>-<data>-<time>
    overwrite: bool = False
    verbose: int = 1

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown config key(s): {', '.join(unknown)}; valid keys: {', '.join(sorted(names))}")
        return cls(**values)


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
