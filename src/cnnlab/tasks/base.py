"""What a task is: the `Task` base class every task implements, and `TaskModel`, a backbone with a task's head.

A task is bound to a run's classes and input size (`make_task(name, classes, input_size, **args)`), so its
methods need nothing else. What the rest of cnnlab asks of it:

| who                         | asks                                                                         |
|-----------------------------|------------------------------------------------------------------------------|
| data (`load_dataset`)       | `target`: the kind of targets to read (label, box, boxes, mask)              |
| run/setup, io.load_model    | `build(backbone)`: the model to train / rebuild from a model file            |
| run/setup                   | `loss(label_smoothing)`                                                      |
| Trainer (train step)        | `running(output, y)`: the batch's metric sums, on the device                 |
| Trainer.evaluate            | `evaluate_outputs(outputs, y)` (one process), `evaluate_sums` (distributed)  |
| evaluate, run/finish        | `metrics(outputs, y)`: the full report; `report(result)`: it as text         |
| infer (flip TTA)            | `flip_back(outputs)`: the outputs of a mirrored image, mirrored back         |
| predict                     | `decode(outputs, top)`, `describe`, `json`, `draw` / `drawings(image, pred)` |
| bench                       | `score(outputs, y)`: the main metric; `agreement(a, b)` between engines      |
| ONNX (export / runtime)     | `output_shape`, `describe_outputs()`                                         |
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
from PIL import Image
from torch import nn


class Task:
    """One task: its targets, head, loss, metrics, decoding and drawing, bound to the classes and input size.

    Subclasses set the class attributes and implement the methods that raise NotImplementedError; `ARGS` lists the
    task's own arguments (`--task-arg KEY=VALUE`, recorded in model files) with their defaults.
    """

    name: ClassVar[str]
    target: ClassVar[str]  # the kind of targets it trains on (data/targets.py): label, box, boxes, mask
    running_metrics: ClassVar[tuple[str, ...]]  # logged per batch and per epoch (and as val_*), besides the loss
    main_metric: ClassVar[str]  # the one number `bench` reports and that is compared across engines
    onnx_output: ClassVar[str] = "outputs"  # the name of an exported graph's output
    ARGS: ClassVar[dict[str, Any]] = {}

    def __init__(self, classes: Sequence[str], input_size: Sequence[int], **args: Any) -> None:
        unknown = sorted(set(args) - set(self.ARGS))
        if unknown:
            takes = ", ".join(sorted(self.ARGS)) or "none"
            raise ValueError(f"task {self.name} does not take {', '.join(unknown)}; its arguments: {takes}")
        self.classes = list(classes)
        self.input_size = tuple(int(v) for v in input_size)  # (C, H, W)
        self.args = {**self.ARGS, **args}

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Shape of one image's raw output: the model returns (N, *output_shape), e.g. (K,) for a classifier."""
        raise NotImplementedError

    def describe_outputs(self) -> str:
        """What the raw output's columns mean, for a stranger reading an exported file."""
        raise NotImplementedError

    # ---- model and loss
    def build(self, backbone: nn.Module) -> nn.Module:
        """The task's model on a network made by `create_model` (what `run.setup` trains and `io.load_model`
        rebuilds from a model file: the same call gives the same parameter names)."""
        raise NotImplementedError

    def loss(self, label_smoothing: float = 0.0) -> Callable[[Any, torch.Tensor], torch.Tensor]:
        raise NotImplementedError

    # ---- metrics
    def running(self, output: Any, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Sums over a training batch of each of `running_metrics` (0-d tensors on the device: no host sync)."""
        raise NotImplementedError

    def evaluate_sums(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        """Sums over a split of the loss (without label smoothing) and of `running_metrics`."""
        raise NotImplementedError

    def evaluate_outputs(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        """Mean loss and `running_metrics` over a split (the Trainer's validation)."""
        n = max(len(targets), 1)
        return {k: v / n for k, v in self.evaluate_sums(outputs, targets).items()}

    def metrics(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict:
        """The full evaluation of a split: `loss`, `n`, the main metric and whatever else the task reports."""
        raise NotImplementedError

    def summary(self, result: dict) -> dict[str, float]:
        """The numbers of a `metrics` result that metrics.json and the model file keep (prefixed test_ / val_)."""
        return {k: result[k] for k in ("loss", *self.running_metrics) if k in result}

    # the summary numbers a run's last line names, with their labels: (key, label) pairs
    HEADLINE: ClassVar[tuple[tuple[str, str], ...]] = (("accuracy", "accuracy"),)

    def headline(self, result: dict, split: str = "test") -> str:
        """The run's last line's numbers: 'test accuracy: 0.8910', 'test mAP@0.5:0.95: 0.6413, mAP@0.5: 0.7928'."""
        parts = [f"{label}: {result[key]:.4f}" for key, label in self.HEADLINE if key in result]
        return f"{split} " + ", ".join(parts)

    def report(self, result: dict) -> str:
        """A `metrics` result as plain text."""
        raise NotImplementedError

    def score(self, outputs: torch.Tensor, targets: torch.Tensor) -> float:
        """The main metric of outputs against targets."""
        return float(self.metrics(outputs, targets)[self.main_metric])

    def agreement(self, a: torch.Tensor, b: torch.Tensor) -> float:
        """How often two engines' outputs give the same predicted class (1.0 = always)."""
        k = self.num_classes
        return float((a[:, :k].argmax(1) == b[:, :k].argmax(1)).float().mean())

    # ---- inference
    def flip_back(self, outputs: torch.Tensor) -> torch.Tensor:
        """The outputs of left–right mirrored images, expressed for the images themselves (flip TTA)."""
        return outputs

    def decode(self, outputs: torch.Tensor, top: int = 3) -> list[dict]:
        """Raw outputs (N, width) → one prediction per image (a JSON-able dict)."""
        raise NotImplementedError

    def describe(self, prediction: dict) -> str:
        """One prediction in one line."""
        raise NotImplementedError

    def json(self, prediction: dict) -> dict:
        """The part of a prediction `predict --json` prints (a segmentation's mask goes to a PNG instead)."""
        return prediction

    def draw(self, image: torch.Tensor, prediction: dict) -> Image.Image:
        """uint8 image (C, H, W) with the prediction drawn on it."""
        raise NotImplementedError

    def drawings(self, image: torch.Tensor, prediction: dict) -> dict[str, Image.Image]:
        """What `predict --out` writes per image, by file suffix: <name>.<suffix>.png (`pred`: `draw`)."""
        return {"pred": self.draw(image, prediction)}


class TaskModel(nn.Module):
    """A backbone's `forward_features` and a task head, with the model interface: `forward(x)` returns ONE tensor
    (the raw outputs, so inference, export and bench run it as they run a classifier), `forward_features`,
    `forward_head(x, pre_logits)`, `reset_classifier`, `default_cfg` (its `classifier` is the head), and the
    backbone's `model_name` / `model_args` (what `create_model` rebuilds it from; the task is in the RunMeta).

    The backbone's modules that `forward_features` never uses (its classifier, auxiliary heads) are dropped, so the
    model carries no dead weights; the parameter names of the rest stay the backbone's, under `backbone.`.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, input_size: Sequence[int]) -> None:
        super().__init__()
        self.model_name = backbone.model_name
        self.model_args = dict(backbone.model_args)
        drop_unused(backbone, input_size)
        self.backbone = backbone
        self.head = head
        self.default_cfg = {**backbone.default_cfg, "classifier": "head.fc"}  # the class output (transfer's head)
        self.num_classes = head.num_classes

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        """A new head for `num_classes` classes."""
        self.head.reset(num_classes)
        self.num_classes = num_classes
        self.model_args["num_classes"] = num_classes


def feature_shape(backbone: nn.Module, input_size: Sequence[int]) -> tuple[int, ...]:
    """Shape (C, h, w) of `forward_features` for one input of `input_size` (C, H, W)."""
    with torch.no_grad(), _eval(backbone):
        return tuple(backbone.forward_features(torch.zeros(1, *input_size)).shape[1:])


def drop_unused(backbone: nn.Module, input_size: Sequence[int]) -> list[str]:
    """Replace by nn.Identity every largest submodule none of whose parameters `forward_features` uses (found by
    one backward pass of a zero input); returns their names. Deterministic: a rebuilt model drops the same ones."""
    params = dict(backbone.named_parameters())
    with _eval(backbone):
        out = backbone.forward_features(torch.zeros(1, *input_size))
    grads = torch.autograd.grad(out.float().sum(), list(params.values()), allow_unused=True)
    used = {name for name, g in zip(params, grads, strict=True) if g is not None}
    dropped: list[str] = []
    for name, module in backbone.named_modules():
        if not name or any(name.startswith(d + ".") for d in dropped):
            continue
        own = [f"{name}.{p}" for p, _ in module.named_parameters()]
        if own and not any(p in used for p in own):
            dropped.append(name)
    for name in dropped:
        backbone.set_submodule(name, nn.Identity())
    return dropped


class _eval:
    """`module` in eval mode for a block (batch statistics of a single zero image mean nothing), mode restored."""

    def __init__(self, module: nn.Module) -> None:
        self.module, self.was = module, module.training

    def __enter__(self) -> nn.Module:
        self.module.eval()
        return self.module

    def __exit__(self, *exc) -> None:
        self.module.train(self.was)
