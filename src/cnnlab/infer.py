"""The one inference path: batches of model input → float32 logits (or penultimate-layer codes).

Everything that runs a trained model forward without gradients goes through here: the Trainer's validation,
`evaluate`, `predict`, explain's embedding and top losses, and the benchmarks. Folding BatchNorm, flip TTA and the
precision are arguments, so validation and test numbers come from the same code with different settings.

It never changes its inputs: the caller's model keeps its device, memory format and train/eval mode (a copy is made
when the model must be folded, moved or converted), and the caller's images are read, not written.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol

import torch
from torch import nn

from cnnlab.data.transforms import Normalize
from cnnlab.io.meta import RunMeta
from cnnlab.layers.fold_bn import fold_batchnorm, is_folded
from cnnlab.layers.pool_first import PoolFirst, pool_first
from cnnlab.models import main_output
from cnnlab.runtime import autocast, resolve_device, resolve_precision, use_channels_last

# fixed, so that training's final test evaluation and `cnnlab evaluate` compute identical numbers
EVAL_BATCH = 500


def _has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def _needs_conversion(model: nn.Module, device: torch.device, channels_last: bool) -> bool:
    """Whether running `model` on `device` (in channels_last memory when asked) means changing its tensors."""
    for p in model.parameters():
        if p.device != device:
            return True
        if channels_last and p.ndim == 4 and not p.is_contiguous(memory_format=torch.channels_last):
            return True
    return False


def prepare(model: nn.Module, device: torch.device, channels_last: bool, fold_bn: bool) -> nn.Module:
    """The module to run: `model` itself when it is ready as it is, else a folded / moved / converted copy."""
    if fold_bn and _has_batchnorm(model) and not is_folded(model):
        model = fold_batchnorm(model)  # a copy: one op instead of conv + BN at inference
    elif _needs_conversion(model, device, channels_last):
        model = copy.deepcopy(model)
    else:
        return model
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """`model` in eval mode for the block, its own mode restored after."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@torch.inference_mode()
def run(
    model: nn.Module,
    batches: Iterable[torch.Tensor],
    device: str | torch.device = "auto",
    precision: str = "auto",
    fold_bn: bool = True,
    tta: bool = False,
    head: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
    progress: Callable[[int], None] | None = None,
    flip_back: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Outputs (N, …) in float32 on the CPU for batches of float model input (B, C, H, W), concatenated in order.

    fold_bn: merge BatchNorm into the preceding conv/linear (on a copy) — the deployed form of the network.
    tta: flip test-time augmentation, the mean of each image's output and its left–right mirror's (the mirror's
    mapped back by `flip_back` first, e.g. a box task's `Task.flip_back`; None: the outputs do not move).
    head: what to compute from the module and a batch; default the main logits (auxiliary heads dropped).
    progress: called with the samples done so far after every batch (e.g. a `Progress`: a long pass is never silent).
    """
    device = resolve_device(device)
    precision = resolve_precision(precision, device)
    channels_last = use_channels_last(device, precision)
    net = prepare(model, device, channels_last, fold_bn)
    head = head or (lambda m, x: main_output(m(x)))
    outs = []
    done = 0
    with eval_mode(net):
        for x in batches:
            x = x.to(device, non_blocking=True)
            if channels_last and x.ndim == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, precision):
                out = head(net, x).float()
                if tta:
                    mirrored = head(net, x.flip(3)).float()
                    out = (out + (flip_back(mirrored) if flip_back is not None else mirrored)) / 2
            outs.append(out.cpu())
            done += len(out)
            if progress is not None:
                progress(done)
    return torch.cat(outs) if outs else torch.zeros(0, 0)


def normalized_batches(
    images: torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    batch_size: int = EVAL_BATCH,
    device: str | torch.device = "cpu",
) -> Iterator[torch.Tensor]:
    """uint8 images (N, C, H, W) → normalised float batches, converted on `device` one batch at a time."""
    if batch_size < 1:
        raise ValueError(f"batch size must be ≥ 1, got {batch_size}")
    normalize = Normalize(mean, std)
    device = resolve_device(device)
    for chunk in images.split(batch_size):
        yield normalize(chunk.to(device, non_blocking=True))


class Progress:
    """A progress line (done, rate, ETA) for `log` at most every `every` seconds of a long pass over `total` images."""

    def __init__(self, total: int, log: Callable[[str], None] | None, every: float = 10.0) -> None:
        self.total, self.log, self.every = total, log, every
        self.start = self.last = time.perf_counter()

    def __call__(self, done: int) -> None:
        now = time.perf_counter()
        if self.log is None or now - self.last < self.every or done <= 0:
            return
        self.last = now
        rate = done / (now - self.start)
        self.log(
            f"inference: {done:,}/{self.total:,} images, {rate:,.0f} images/s, ETA {(self.total - done) / rate:.0f} s"
        )


def predict_logits(
    model: nn.Module,
    images: torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    device: str | torch.device = "auto",
    precision: str = "auto",
    batch_size: int = EVAL_BATCH,
    tta: bool = False,
    fold_bn: bool = True,
    head: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
    log: Callable[[str], None] | None = None,
    flip_back: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """float32 logits (N, classes) — a task's raw outputs — for uint8 images (N, C, H, W), normalised with the
    training mean/std.

    head: what to compute instead of the logits (see `run`), e.g. `penultimate` for the CNN codes.
    log: gets a progress line (done, rate, ETA) every 10 s of a long pass.
    flip_back: how flip TTA maps a mirrored image's outputs back (see `run`).
    """
    device = resolve_device(device)
    batches = normalized_batches(images, mean, std, batch_size, device)
    progress = Progress(len(images), log)
    return run(model, batches, device, precision, fold_bn, tta, head, progress, flip_back)


class Classifier(Protocol):
    """What evaluate, predict, bench and serve run: a trained classifier and how to feed it.

    `meta` says how (input size, mode, mean / std, classes, flip TTA, task); `logits` takes uint8 images
    (N, C, H, W) and returns float32 logits (N, classes) on the CPU — for another task than classification its raw
    outputs (N, width), which `meta.make_task()` decodes. The torch model (`TorchClassifier`) and an ONNX Runtime
    session (`cnnlab.deploy.onnx_runtime.OnnxClassifier`) both meet it.
    """

    meta: RunMeta

    def logits(
        self, images: torch.Tensor, tta: bool | None = None, log: Callable[[str], None] | None = None
    ) -> torch.Tensor: ...


class TorchClassifier:
    """A trained torch model behind the `Classifier` protocol: BatchNorm folded once, channels_last where it pays,
    on `device`, in the precision it was trained in (or `precision`), flip TTA as the run says (or `tta`).

    `model` stays as it was given (explanations need it unfolded); `net` is the prepared copy inference runs.
    """

    def __init__(
        self,
        model: nn.Module,
        meta: RunMeta,
        device: str | torch.device = "auto",
        precision: str | None = None,
        tta: bool | None = None,
    ) -> None:
        self.model, self.meta = model, meta
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision or meta.precision, self.device)
        self.tta = meta.tta if tta is None else tta
        self.net = prepare(model, self.device, use_channels_last(self.device, self.precision), fold_bn=True)
        self.flip_back = meta.make_task().flip_back  # flip TTA: a box's centre mirrors back, a class stays

    @property
    def net(self) -> nn.Module:
        """The prepared module inference runs (a folded copy, or `model` itself where nothing needed changing)."""
        return self._net

    @net.setter
    def net(self, net: nn.Module) -> None:
        # its forward pass with each ReLU that feeds only a max pool after the pool (the same outputs; 1.15× for the
        # fast recipe's model at batch 256, bf16, AMX: BENCHMARKS.md, "ReLU after the pooling"), traced here, in
        # eval mode as it runs: tracing patches torch.nn.Module.__call__ while it lasts, so it must not happen
        # lazily on a first request while other threads run models (serve predicts on a thread pool and explains
        # the model as trained beside it)
        self._net, self.forward = net, pool_first(net)
        if isinstance(self.forward, PoolFirst):
            with eval_mode(net):
                self.forward.trace()

    def logits(
        self, images: torch.Tensor, tta: bool | None = None, log: Callable[[str], None] | None = None
    ) -> torch.Tensor:
        m = self.meta
        tta = self.tta if tta is None else tta
        return predict_logits(
            self.net,
            images,
            m.mean,
            m.std,
            self.device,
            self.precision,
            tta=tta,
            fold_bn=False,
            head=self.head,
            log=log,
            flip_back=self.flip_back,
        )

    def head(self, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """`infer.run`'s head for this classifier: the main output of `forward` (its `net`, ReLUs after the pools)."""
        return main_output(self.forward(x))


def penultimate(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The CNN codes of a batch: `forward_head(forward_features(x), pre_logits=True)`, flattened to (B, D)."""
    return model.forward_head(model.forward_features(x), pre_logits=True).flatten(1)


def cnn_codes(
    model: nn.Module, images: torch.Tensor, mean: Sequence[float], std: Sequence[float], **kw
) -> torch.Tensor:
    """Penultimate-layer codes (N, D) float32 of uint8 images; by default fp32 on the CPU, BatchNorm not folded.

    Keyword arguments are those of `predict_logits`.
    """
    kw = {"device": "cpu", "precision": "fp32", "fold_bn": False, **kw}
    return predict_logits(model, images, mean, std, head=penultimate, **kw)
