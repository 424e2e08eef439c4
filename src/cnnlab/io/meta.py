"""`RunMeta`: what a trained model file says about itself, typed, validated in one place.

A model file (`model.safetensors`) and an exported ONNX file carry the same record: how to rebuild the network
(name and constructor arguments), how to feed it (input size, colour mode, mean / std), what its outputs mean
(class names), how it was trained (precision, flip TTA, data set and how it was split) and a summary of its
metrics. Everything that reads a model reads this object; nothing reads the JSON by key.

A file is user input: `RunMeta.from_dict` refuses malformed or absurd metadata in one line naming the file and the
key, before anything is allocated from it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnlab.data.images import channels_mode

FORMAT = "cnnlab.model/1"
ONNX_FORMAT = "cnnlab.onnx/1"

# sane limits for what a model file may ask for, checked before anything is allocated
MAX_SIDE = 4096  # pixels
MAX_CHANNELS = 16
MAX_CLASSES = 100_000

# one fact per ONNX metadata prop, for a stranger reading the file with onnxruntime alone
ONNX_INPUT, ONNX_OUTPUT = "input", "logits"
PREPROCESS = "image in input_mode, resized to H×W (bilinear); float32 NCHW; x/255, then (x - mean)/std per channel"


@dataclass(frozen=True)
class DataRecord:
    """How a run read and split its data: what `cnnlab.run.splits.run_splits` needs to rebuild the splits exactly.

    source: a data set name (`fashion-mnist`) or `folder:` / `npz:` / `csv:` with an absolute path.
    val_split: as the run asked (a count, a fraction, or None for the source's default), carved with `seed`.
    The image size and colour mode are the model's input size and mode.
    """

    source: str
    data_dir: str | None = None
    val_split: int | float | None = None
    seed: int = 0
    max_train_samples: int | None = None
    stream: bool = False
    strict: bool = False

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: object, where: str | Path) -> DataRecord:
        if not isinstance(raw, dict) or not isinstance(raw.get("source"), str):
            raise MetaError(where, "'data' must be a mapping with a 'source' name")
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        for key in ("seed", "max_train_samples"):
            v = values.get(key)
            if v is not None and not _is_int(v):
                raise MetaError(where, f"data '{key}' {v!r} is not a whole number")
        v = values.get("val_split")
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or v < 0):
            raise MetaError(where, f"data 'val_split' {v!r} is not a count or a fraction")
        return cls(**values)


@dataclass(frozen=True)
class ExportInfo:
    """What an exported (ONNX) file adds: the precision of its graph and where it came from."""

    precision: str = "fp32"  # of the exported graph: fp32 or int8
    source_run: str | None = None
    quantization: dict | None = None  # int8: format, weights, activations, calibration set


class MetaError(ValueError):
    """Metadata that cannot be used, with the file named."""

    def __init__(self, where: str | Path, what: str) -> None:
        super().__init__(f"{where}: {what} in its cnnlab metadata")


@dataclass(frozen=True)
class RunMeta:
    """A trained model's description: how to rebuild it, feed it, read its outputs, and where it came from."""

    model: str
    model_args: dict
    classes: tuple[str, ...]
    input_size: tuple[int, int, int]  # (C, H, W)
    mean: tuple[float, ...]  # per channel, on the 0–1 pixel scale
    std: tuple[float, ...]
    precision: str = "fp32"  # the precision it was trained in: inference uses it unless told otherwise
    tta: bool = False  # flip test-time augmentation by default
    dataset: str | None = None  # the data set's name, for people
    data: DataRecord | None = None  # how the data were read and split, for `run_splits`
    metrics: dict = field(default_factory=dict)  # test_accuracy, val_accuracy, epochs, train_seconds, …
    init_from: dict | None = None  # transfer learning: the source and what was loaded
    export: ExportInfo | None = None  # set for an exported ONNX file
    task: str = "classify"  # what the outputs are (cnnlab/tasks): classify, localize, …
    task_args: dict = field(default_factory=dict)  # the task's own arguments (its head's size, loss weights)

    @property
    def channels(self) -> int:
        return self.input_size[0]

    @property
    def mode(self) -> str:
        """The PIL mode of the input images: 'L' or 'RGB'."""
        return channels_mode(self.input_size[0])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def replace(self, **changes: Any) -> RunMeta:
        return dataclasses.replace(self, **changes)

    def make_task(self):
        """The model's task (a `cnnlab.tasks.Task`), bound to its classes and input size."""
        from cnnlab.tasks import make_task

        return make_task(self.task, self.classes, self.input_size, **self.task_args)

    @classmethod
    def for_model(cls, model: Any, **values: Any) -> RunMeta:
        """The metadata of a model built by `create_model`: its name and arguments, and what `values` does not give
        from its `default_cfg` (input size, mean / std) and its class count ("0" … "K-1")."""
        if not hasattr(model, "model_name"):
            raise ValueError("a model file needs a model built by cnnlab.create_model (it records how to rebuild it)")
        cfg = getattr(model, "default_cfg", {}) or {}
        defaults: dict[str, Any] = {k: cfg[k] for k in ("input_size", "mean", "std") if k in cfg}
        num_classes = model.model_args.get("num_classes")
        if num_classes is not None:
            defaults["classes"] = [str(i) for i in range(num_classes)]
        raw = {"model": model.model_name, "model_args": model.model_args, **defaults, **values}
        return cls.from_dict(_plain(raw), f"model {model.model_name}")

    # ---- the JSON record (the safetensors metadata key `cnnlab`) ----

    def to_dict(self) -> dict:
        out = {"format": FORMAT}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, DataRecord | ExportInfo):
                value = dataclasses.asdict(value)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        out["mode"] = self.mode  # for readers of the JSON without cnnlab
        return out

    @classmethod
    def from_dict(cls, raw: object, where: str | Path) -> RunMeta:
        """Validated metadata from its JSON record; anything malformed or out of range is one MetaError."""
        if not isinstance(raw, dict):
            raise MetaError(where, "not a mapping")
        for key in ("model", "model_args", "classes", "input_size", "mean", "std"):
            if key not in raw:
                raise MetaError(where, f"no '{key}'")
        if not isinstance(raw["model"], str) or not isinstance(raw["model_args"], dict):
            raise MetaError(where, "'model' must be a name and 'model_args' a mapping")
        size = _input_size(raw["input_size"], where)
        classes = raw["classes"]
        if not (isinstance(classes, list | tuple) and 1 <= len(classes) <= MAX_CLASSES):
            raise MetaError(where, f"'classes' must be a list of 1–{MAX_CLASSES:,} names")
        if not all(isinstance(c, str) for c in classes):
            raise MetaError(where, "'classes' must be names (strings)")
        mean, std = (_per_channel(raw[k], k, size[0], where) for k in ("mean", "std"))
        if not all(v > 0 for v in std):
            raise MetaError(where, f"'std' {list(std)} must be > 0")
        _check_model_args(raw["model_args"], len(classes), where)
        precision = raw.get("precision") or "fp32"
        if precision not in ("fp32", "bf16"):
            raise MetaError(where, f"'precision' {precision!r} is not fp32 or bf16")
        data = raw.get("data")
        export = raw.get("export")
        task, task_args = _task(raw, classes, size, where)
        return cls(
            model=raw["model"],
            model_args=dict(raw["model_args"]),
            classes=tuple(classes),
            input_size=size,
            mean=mean,
            std=std,
            precision=precision,
            tta=bool(raw.get("tta", False)),
            dataset=raw.get("dataset") if isinstance(raw.get("dataset"), str) else None,
            data=DataRecord.from_dict(data, where) if data is not None else None,
            metrics=raw.get("metrics") if isinstance(raw.get("metrics"), dict) else {},
            init_from=raw.get("init_from") if isinstance(raw.get("init_from"), dict) else None,
            export=ExportInfo(**export) if isinstance(export, dict) else None,
            task=task,
            task_args=task_args,
        )

    @classmethod
    def from_json(cls, text: str, where: str | Path) -> RunMeta:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{where}: its cnnlab metadata is not valid JSON ({e.msg} at character {e.pos})") from None
        return cls.from_dict(raw, where)

    # ---- ONNX metadata props ----

    def onnx_props(self, export: ExportInfo | None = None) -> dict[str, str]:
        """The ONNX file's metadata props (strings): one key per fact a stranger needs, and `cnnlab` with the whole
        record as JSON. In the record `precision` is the graph's (fp32 / int8), `trained_precision` the run's."""
        export = export or self.export or ExportInfo()
        record = {**self.to_dict(), "format": ONNX_FORMAT, "trained_precision": self.precision}
        record.pop("export", None)
        record.update(
            precision=export.precision,
            source_run=export.source_run,
            bn_folded=True,
            input_name=ONNX_INPUT,
            output_name=self.make_task().onnx_output,
        )
        if export.quantization is not None:
            record["quantization"] = export.quantization
        props = {
            "cnnlab": json.dumps(record),
            "classes": json.dumps(list(self.classes)),
            "input_size": json.dumps(list(self.input_size)),
            "input_mode": self.mode,
            "mean": json.dumps(list(self.mean)),
            "std": json.dumps(list(self.std)),
            "tta": "flip" if self.tta else "none",
            "preprocess": PREPROCESS,
            "source_run": str(export.source_run or ""),
            "precision": export.precision,
            "task": self.task,
            "outputs": self.make_task().describe_outputs(),
        }
        if self.dataset:
            props["dataset"] = self.dataset
        return props

    @classmethod
    def from_onnx_props(cls, props: dict[str, str], where: str | Path) -> RunMeta:
        """The metadata of an ONNX file written by cnnlab (`onnx_props`), validated like a model file's."""
        raw = props.get("cnnlab")
        if raw is None:
            raise ValueError(
                f"{where}: an ONNX file without cnnlab metadata; to run it as a classifier give "
                "--input C,H,W --mean M[,M,M] --std S[,S,S] to cnnlab predict (evaluate, bench and serve take an "
                "ONNX file cnnlab exported)"
            )
        try:
            record = json.loads(raw)
        except ValueError:
            raise ValueError(f"{where}: its cnnlab metadata is not valid JSON") from None
        if not isinstance(record, dict) or record.get("format") != ONNX_FORMAT:
            found = record.get("format") if isinstance(record, dict) else None
            raise ValueError(f"{where}: cnnlab metadata of format {found!r}; this cnnlab reads {ONNX_FORMAT}")
        graph = record.get("precision", "fp32")
        if graph not in ("fp32", "int8"):
            raise MetaError(where, f"'precision' {graph!r} of the graph is not fp32 or int8")
        quantization = record.get("quantization")
        source = record.get("source_run")
        export = ExportInfo(
            graph,
            source if isinstance(source, str) else None,
            quantization if isinstance(quantization, dict) else None,
        )
        meta = cls.from_dict({**record, "precision": record.get("trained_precision"), "export": None}, where)
        return meta.replace(export=export)

    @classmethod
    def foreign(cls, name: str, input_size, mean, std, num_classes: int, where: str | Path) -> RunMeta:
        """Metadata for a classifier cnnlab did not write (an ONNX file from elsewhere): the user gives how to feed
        it; its classes are "0" … "K-1"."""
        raw = {
            "model": name,
            "model_args": {},
            "classes": [str(i) for i in range(num_classes)],
            "input_size": list(input_size),
            "mean": list(mean),
            "std": list(std),
        }
        return cls.from_dict(raw, where).replace(export=ExportInfo())


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _plain(value: Any) -> Any:
    """Tuples → lists, recursively: the JSON form `from_dict` validates."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _input_size(size: object, where: str | Path) -> tuple[int, int, int]:
    if not (isinstance(size, list | tuple) and len(size) == 3 and all(_is_int(v) for v in size)):
        raise MetaError(where, f"'input_size' {size!r} is not [C, H, W]")
    c, h, w = size
    if not (1 <= c <= MAX_CHANNELS and 1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
        raise MetaError(where, f"'input_size' {list(size)} is out of range (C 1–{MAX_CHANNELS}, H and W 1–{MAX_SIDE})")
    return (c, h, w)


def _per_channel(values: object, key: str, c: int, where: str | Path) -> tuple[float, ...]:
    ok = isinstance(values, list | tuple) and len(values) == c
    if not ok or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        raise MetaError(where, f"'{key}' must be {c} number(s), one per channel")
    if not all(math.isfinite(v) for v in values):
        raise MetaError(where, f"'{key}' {list(values)} is not finite")
    return tuple(float(v) for v in values)


def _task(raw: dict, classes: list, size: tuple[int, int, int], where: str | Path) -> tuple[str, dict]:
    """The task and its arguments (files written before tasks existed are classifiers), checked by binding them."""
    from cnnlab.tasks import make_task

    task, args = raw.get("task", "classify"), raw.get("task_args") or {}
    if not isinstance(task, str) or not isinstance(args, dict):
        raise MetaError(where, "'task' must be a name and 'task_args' a mapping")
    try:
        make_task(task, classes, size, **args)
    except (ValueError, TypeError) as e:
        raise MetaError(where, str(e)) from None
    return task, dict(args)


def _check_model_args(args: dict, num_classes: int, where: str | Path) -> None:
    for key in ("num_classes", "in_chans", "img_size"):
        value = args.get(key)
        if value is not None and not (_is_int(value) and 1 <= value <= max(MAX_SIDE, MAX_CLASSES)):
            raise MetaError(where, f"model_args '{key}' {value!r} is out of range")
    if args.get("num_classes", num_classes) != num_classes:
        raise MetaError(
            where, f"model_args num_classes {args['num_classes']} differs from its {num_classes} class names"
        )
