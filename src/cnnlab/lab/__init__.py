"""`cnnlab lab LESSON`: the lectures' worked examples and experiments, runnable.

Each lesson is one module with `run(quick, out, echo=print, …) -> dict`: it prints its numbers as it goes (through
`echo`), writes one figure `lab-<lesson>.png` into `out`, and returns the numbers it printed. Everything is
computed by cnnlab's own code paths (the notation builder, `cnnlab.train.Trainer`, `cnnlab.infer`,
`cnnlab.inspect`, `cnnlab.explain`); nothing is a stored result. `quick=True` uses tiny sizes and generated data
(seconds); otherwise the lessons that train use Fashion-MNIST (never downloaded here: `cnnlab datasets get`).

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
    "conv": "cross-correlation vs convolution window by window; stride, padding and ⌊(n + 2p − k)/s⌋ + 1",
    "xo": "the X/O toy classifier: 3 detectors → ReLU → 2×2 max-pool in ceil mode (7×7 → 4×4) → votes",
    "invariance": "shift equivariance of convs, invariance from pooling; MLP vs CNN with shuffled pixels",
    "depth": "vanishing gradients: plain nets with sigmoid / tanh / ReLU, a ResNet with and without shortcuts",
    "adversarial": "FGSM adversarial examples: accuracy vs ε",
    "gd": "gradient descent with the |Δθ| < ε stop, three step sizes; a finite-difference gradient check",
    "signal": "1-D convolution: smoothing and edges on a signal; a 1-D CNN classifying waveforms",
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
    **options,
) -> dict:
    """Run lesson `name`; `options` are the lesson's own keywords (`data`, `gif`); those it does not take are
    refused by name. `threads`: torch's intra-op threads while it runs, restored after (default: 1 in quick mode,
    whose tiny tensors gain nothing from more; else `runtime.choose_threads`'s measured choice, which every
    Trainer of the lesson then takes as given)."""
    from cnnlab.runtime import use_threads

    module = lesson_module(name)
    takes = inspect.signature(module.run).parameters
    unknown = [k for k, v in options.items() if k not in takes and v not in (None, False)]
    if unknown:
        raise ValueError(f"lesson '{name}' does not take --{unknown[0].replace('_', '-')}")
    kwargs = {k: v for k, v in options.items() if k in takes}
    Path(out).mkdir(parents=True, exist_ok=True)
    with use_threads(threads or (1 if quick else None)):
        return module.run(quick=quick, out=Path(out), echo=echo or (lambda line: None), **kwargs)
