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

import torch
from torch import nn

from cnnlab.data.transforms import Normalize
from cnnlab.layers.fold_bn import fold_batchnorm
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
    if fold_bn and _has_batchnorm(model):
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
    every: float = 10.0,
) -> torch.Tensor:
    """Outputs (N, …) in float32 on the CPU for batches of float model input (B, C, H, W), concatenated in order.

    fold_bn: merge BatchNorm into the preceding conv/linear (on a copy) — the deployed form of the network.
    tta: flip test-time augmentation, the mean of each image's output and its left–right mirror's.
    head: what to compute from the module and a batch; default the main logits (auxiliary heads dropped).
    progress: called with the samples done so far, at most every `every` seconds (a long pass is never silent).
    """
    device = resolve_device(device)
    precision = resolve_precision(precision, device)
    channels_last = use_channels_last(device, precision)
    net = prepare(model, device, channels_last, fold_bn)
    head = head or (lambda m, x: main_output(m(x)))
    outs = []
    done, last = 0, time.perf_counter()
    with eval_mode(net):
        for x in batches:
            x = x.to(device, non_blocking=True)
            if channels_last and x.ndim == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, precision):
                out = head(net, x).float()
                if tta:
                    out = (out + head(net, x.flip(3)).float()) / 2
            outs.append(out.cpu())
            done += len(out)
            if progress is not None and time.perf_counter() - last >= every:
                progress(done)
                last = time.perf_counter()
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
) -> torch.Tensor:
    """float32 logits (N, classes) for uint8 images (N, C, H, W), normalised with the training mean/std.

    head: what to compute instead of the logits (see `run`), e.g. `penultimate` for the CNN codes.
    log: gets a progress line (done, rate, ETA) every 10 s of a long pass.
    """
    device = resolve_device(device)
    batches = normalized_batches(images, mean, std, batch_size, device)
    start, n = time.perf_counter(), len(images)

    def progress(done: int) -> None:
        rate = done / (time.perf_counter() - start)
        log(f"inference: {done:,}/{n:,} images, {rate:,.0f} images/s, ETA {(n - done) / rate:.0f} s")

    return run(
        model,
        batches,
        device,
        precision,
        fold_bn=fold_bn,
        tta=tta,
        head=head,
        progress=progress if log is not None else None,
    )


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
