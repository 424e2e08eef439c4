"""`cnnlab lab LESSON`: the lectures' worked examples and experiments, runnable.

Each lesson is one module with `run(quick, out, echo=print, …) -> dict`: it prints its numbers as it goes (through
`echo`), writes one figure `lab-<lesson>.png` into `out`, and returns the numbers it printed. Everything is
computed by cnnlab's own code paths (the notation builder, `cnnlab.train.Trainer`, `cnnlab.infer`,
`cnnlab.inspect`, `cnnlab.explain`); nothing is a stored result. `quick=True` uses tiny sizes and generated data
(seconds); otherwise the lessons that train use Fashion-MNIST (never downloaded here: `cnnlab datasets get`).
`slide=True` (`--slide`) switches `conv` and `xo` from our own example to the deck's worked example, printed as
tables to compare line by line, in `lab-<lesson>-slide.png`; where the deck's numbers are in no document we hold,
the lesson says so and uses a public version or its own numbers with the slide's shapes (docs/lectures.md).

The package sits beside `cnnlab.run`, above evaluate / inspect / explain, whose code it uses. It trains small
models with `Trainer` directly rather than through the pipeline, because a lesson needs its own short loops
(gradient norms per step, a fixed pixel shuffle, adversarial inputs) and no run folder.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from pathlib import Path

LESSONS: dict[str, str] = {
    "conv": "cross-correlation window by window; stride, padding, ⌊(n + 2p − k)/s⌋ + 1; --slide: 10×9 ⋆ 4×4 → 7×6",
    "xo": "the X/O classifier: 3 detectors → ReLU → 2×2 ceil-mode max-pool → votes; --slide: the 7×7 / 4×4 tables",
    "invariance": "shift equivariance of convs, invariance from pooling; MLP vs CNN with shuffled pixels",
    "depth": "vanishing gradients: sigmoid / tanh / ReLU plain nets (Glorot; ReLU also He), ResNet with / without shortcuts",
    "adversarial": "FGSM adversarial examples: accuracy vs ε",
    "gd": "gradient descent with the |Δθ| < ε stop, three step sizes; a finite-difference gradient check",
    "signal": "1-D convolution: smoothing and edges on a signal; a 1-D CNN classifying waveforms",
    "pool": "max / average pooling window by window: 4×4 → 2×2, where the gradient goes, ceil mode, a 1-px shift",
    "channels": "convolution over channels: M kernels of depth N, each output map summed over the input channels",
    "sparse": "the Deep Learning book's edge example: 267,960 operations by convolution vs > 8 billion matrix entries",
    "likelihood": "maximum likelihood: a coin, a classifier's labels (cross-entropy = −log-likelihood), a Gaussian",
    "perceptron": "the perceptron rule w ← w + y·x: converges within (R/γ)² updates on separable data; AND, OR, XOR",
    "standardize": "the same model and SGD step on raw 0–255, 0–1 and standardized pixels; why (input curvature)",
    "equivariance": "conv(T x) = T conv(x) for shifts, not rotations or zooms; the trained net's accuracy under each",
    "batch": "batch size vs updates, test accuracy and time per epoch; minibatch gradient noise ∝ 1/B",
    "advtrain": "adversarial training on FGSM examples: accuracy under FGSM and an iterated attack, before / after",
    "svm": "hand-crafted HOG-like features + SVMs (scikit-learn) against LeNet-5's learned features",
    "gabor": "learned first-layer 7×7 kernels beside the Gabor filters they come closest to (and their initial state)",
    "detect": "a grid detector step by step: the grid, the cell that owns each object, candidates → threshold → NMS",
    "segment": "U-Nets in one line: skips vs none, UT vs UR; pixel accuracy, mIoU and accuracy on the edges",
    "dream": "activation maximization: one channel at a time vs DeepDream's whole-layer objective, from noise / a photo",
}


def list_lessons() -> list[str]:
    return list(LESSONS)


def lesson_module(name: str):
    if name not in LESSONS:
        raise ValueError(f"unknown lesson '{name}'; choose from {', '.join(LESSONS)}")
    return importlib.import_module(f"cnnlab.lab.{name}")


def run_lesson(
    name: str,
    quick: bool = False,
    out: str | Path = ".",
    echo: Callable[[str], None] | None = print,
    threads: int | None = None,
    status: Callable[[str], None] | None = None,
    **options,
) -> dict:
    """Run lesson `name`; `options` are the lesson's own keywords (`data`, `gif`, `slide`); those it does not take
    are refused by name. `threads`: torch's intra-op threads while it runs, restored after (default: 1 in quick mode,
    whose tiny tensors gain nothing from more; else `runtime.choose_threads`'s measured choice, which every Trainer
    of the lesson then takes as given). The lesson runs with torch's RNG seeded with 0, so its numbers do not depend
    on what ran before it. `status` gets a line as each long step of the lesson starts (a model trained, …); these
    lines are not the lesson's report (`echo`)."""
    from cnnlab.runtime import use_threads

    module = lesson_module(name)
    takes = inspect.signature(module.run).parameters
    unknown = [k for k, v in options.items() if k not in takes and v not in (None, False)]
    if unknown:
        raise ValueError(f"lesson '{name}' does not take --{unknown[0].replace('_', '-')}")
    kwargs = {k: v for k, v in options.items() if k in takes}
    Path(out).mkdir(parents=True, exist_ok=True)
    import torch

    # every lesson starts from torch's RNG seeded with 0, whatever ran before it in this process (the docs script
    # runs them all in one), and leaves the caller's RNG as it found it
    from cnnlab.lab._common import stages_to

    with use_threads(threads or (1 if quick else None)), torch.random.fork_rng(), stages_to(status):
        torch.manual_seed(0)
        return module.run(quick=quick, out=Path(out), echo=echo or (lambda line: None), **kwargs)
