"""The flat Python API: `cnnlab.train`, `cnnlab.predict`, `cnnlab.lr_find`, `cnnlab.fine_tune` — each verb of the
command line as one call with keywords, over the same library functions the verbs call.

Every keyword other than the few named in a signature is a field of `cnnlab.train.config.TrainConfig` (a `cnnlab
train` flag without its dashes: `batch_size=64`, `augment="flip"`); a keyword that is not one is refused in one line
that names the close fields.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cnnlab.deploy.engines import open_classifier
from cnnlab.predict import predict_files
from cnnlab.run.finish import RunResult
from cnnlab.run.lr_find import lr_find as run_lr_find
from cnnlab.run.train import train_run
from cnnlab.train.config import TrainConfig
from cnnlab.train.transfer import with_source_model

__all__ = ["fine_tune", "lr_find", "predict", "train"]


def train(
    data: str = "fashion-mnist",
    model: str = "lenet5",
    epochs: int | None = None,
    out: str | Path | None = None,
    *,
    callbacks: list | None = None,
    log: Callable[..., None] = print,
    **options: Any,
) -> RunResult:
    """Train `model` on `data` and write the run folder `out` (default runs/<model>-<data>-<time>), as `cnnlab
    train` does; returns the run's `RunResult` (`.out`, `.metrics` as in metrics.json, `.history`).

    options: any other TrainConfig field, e.g. `batch_size=64, lr=3e-3, augment="flip", time_budget="3m"`.
    callbacks: Trainer callbacks added to the run's own; log: where the run's lines go (print by default).
    """
    cfg = _config("train", data=data, model=model, epochs=epochs, out=out, **options)
    return train_run(cfg, callbacks=callbacks, log=log)


def fine_tune(
    source_run: str | Path,
    data: str = "fashion-mnist",
    epochs: int | None = None,
    out: str | Path | None = None,
    *,
    callbacks: list | None = None,
    log: Callable[..., None] = print,
    **options: Any,
) -> RunResult:
    """Train on `data` starting from the weights of `source_run` (`cnnlab train --init-from`): a cnnlab run folder or
    model file, whose architecture is used unless `model=` says otherwise, or a torchvision / timm weight file (then
    `model=` is needed).

    The transfer defaults apply unless options change them: everything but the classifier frozen for one epoch
    (`freeze="features"`, `freeze_epochs=1`), then the whole network at `lr` (`backbone_lr_mult=1`; a smaller
    multiple keeps more of the source's features); the classifier is new unless the classes are the same, and so are
    the fully connected layers below it unless `keep_fc=True` (only the convolutional body is transferred). A
    classifier's run first checks that the source fits (`cnnlab.train.fit_check`): where its features separate the
    training images' classes less well than the fresh network's, it trains from scratch (`init_always=True` skips
    the check).
    """
    values = with_source_model(_given(init_from=str(source_run), data=data, epochs=epochs, out=out, **options))
    return train_run(_config("fine_tune", **values), callbacks=callbacks, log=log)


def lr_find(
    data: str = "fashion-mnist",
    model: str = "lenet5",
    *,
    min_lr: float = 1e-7,
    max_lr: float = 10.0,
    steps: int = 100,
    out: str | Path = ".",
    log: Callable[..., None] = print,
    **options: Any,
) -> dict:
    """The learning-rate range test (`cnnlab lr-find`): the LR rises exponentially from `min_lr` to `max_lr` over
    `steps` steps on `model` and `data`. Returns {"suggested_lr", "lrs", "losses", "png"} (the curve, and
    `out`/lr_find.png with the suggestion marked).

    options: any other TrainConfig field (batch_size, optimizer, augment, …; epochs and schedules do not apply).
    """
    cfg = _config("lr_find", data=data, model=model, **options)
    return run_lr_find(cfg, min_lr, max_lr, steps, out, log)


def predict(
    model: str | Path,
    images: Any,
    top: int = 3,
    *,
    device: str = "auto",
    tta: bool | None = None,
) -> list[dict]:
    """The `top` classes of each image by a trained model, read and normalised as the model's training data were.

    model: a run folder, a .safetensors model file or an exported .onnx file.
    images: one image or a list of them: files, PIL images, or arrays as numpy holds images (H×W or H×W×C, uint8 or
    float in [0, 1]); each is converted to the model's colour mode and size, with a note saying so.
    Returns one dict per image: {"file": path or None, "top": [{"class", "index", "probability"}, …], "notes"}
    (the lines of `cnnlab predict`, as data).
    """
    classifier = open_classifier(model, device, tta=tta)
    return predict_files(classifier, _as_list(images), top)


def _config(verb: str, **values: Any) -> TrainConfig:
    """The TrainConfig of `values` (None: the field's default); an unknown keyword is a TypeError naming the close
    fields, as Python's own for a wrong keyword."""
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    unknown = [k for k in values if k not in names]
    if unknown:
        close = sorted({m for k in unknown for m in difflib.get_close_matches(k, names, n=3, cutoff=0.6)})
        hint = f"did you mean {', '.join(close)}?" if close else "the options are the fields of TrainConfig"
        raise TypeError(
            f"cnnlab.{verb}() got unknown keyword(s) {', '.join(map(repr, unknown))}; {hint} "
            "(`cnnlab train --help` lists them)"
        )
    return TrainConfig.from_dict(_given(**values))


def _given(**values: Any) -> dict:
    """The values that were given (not None), paths as strings."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in values.items() if v is not None}


def _as_list(images: Any) -> list:
    """One image (a path, a PIL image, an H×W(×C) array) or a sequence of them → a list."""
    if isinstance(images, str | Path) or hasattr(images, "getpixel"):  # a file, a PIL image
        return [images]
    if hasattr(images, "ndim"):  # an array: one image (H×W, H×W×C with C = 1, 3, 4), else a stack of them
        one = images.ndim == 2 or (images.ndim == 3 and images.shape[2] in (1, 3, 4))
        return [images] if one else list(images)
    if isinstance(images, Sequence) or hasattr(images, "__iter__"):
        items = list(images)
        if not items:
            raise ValueError("no images given")
        return items
    raise TypeError(f"images: a file, a PIL image, an array or a list of them, not {type(images).__name__}")
