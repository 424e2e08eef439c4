"""Helpers shared by the benchmark scripts of suite/ (run, gpu, profile_gaps) and features/ (time_budget,
busy_threads, profile_budget_step): statistics, the machine's matmul peak, Fashion-MNIST read once, cnnlab Trainer
throughput and whole `cnnlab train` processes. Imports no script."""

from __future__ import annotations

import functools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from benchmarks import ROOT
from cnnlab.data import DataSplits, InMemoryLoader, Normalize, channel_stats, load_dataset
from cnnlab.inspect import summary
from cnnlab.models import create_model
from cnnlab.train import Trainer, build_optimizer
from cnnlab.train.callbacks import Callback


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def fmt(values: list[float], digits: int = 0) -> str:
    m, s = mean_std(values)
    return f"{m:,.{digits}f} ± {s:,.{digits}f}"


# ---- (c) the machine's limit
def matmul_peak(dtype: torch.dtype, n: int = 4096, reps: int = 4) -> dict[str, float]:
    """GFLOP/s of an n×n×n matrix product in `dtype`, best of `reps` after warm-up, by two routes.

    `matmul` goes through BLAS (MKL); `onednn` is the same product as a 1×1 convolution in channels_last, run by
    oneDNN — the library that runs cnnlab's convolutions. On AMD CPUs MKL's fp32 path reaches about half of oneDNN's,
    so the larger of the two is taken as the machine's limit. Under `ONEDNN_MAX_CPU_ISA` (a CPU measured as a lesser
    one) only oneDNN obeys the cap, so MKL's route is left out unless `MKL_ENABLE_INSTRUCTIONS` caps it too: the
    peak is then the capped instruction set's, as the step it is compared with.
    """
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    x = torch.randn(1, n, 64, n // 64, dtype=dtype).contiguous(memory_format=torch.channels_last)  # n pixels, n ch
    w = torch.randn(n, n, 1, 1, dtype=dtype).contiguous(memory_format=torch.channels_last)
    out = {}
    routes = {"matmul": lambda: a @ b, "onednn": lambda: torch.nn.functional.conv2d(x, w)}
    if os.environ.get("ONEDNN_MAX_CPU_ISA") and not os.environ.get("MKL_ENABLE_INSTRUCTIONS"):
        del routes["matmul"]
    for name, fn in routes.items():
        for _ in range(2):
            fn()
        best = float("inf")
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t)
        out[name] = 2 * n**3 / best / 1e9
    return out


def train_flops_per_sample(model_name: str, input_size=(1, 28, 28), **kw) -> float:
    """FLOPs to train on one sample: 2 FLOPs per MAC, backward ≈ 2× forward (grads of inputs and of weights)."""
    model = create_model(model_name, num_classes=10, in_chans=input_size[0], img_size=input_size[1], **kw)
    return 3 * 2 * summary(model, input_size)["macs"]


# ---- cnnlab
@functools.cache
def fashion(seed: int = 0) -> DataSplits:
    """Fashion-MNIST with the validation split of `seed`, read from disk once per seed for the whole benchmark."""
    return load_dataset("fashion-mnist", seed=seed)


def cnnlab_train_rate(
    model_name: str,
    samples: int,
    seed: int,
    precision: str,
    batch_size: int,
    device: str = "cpu",
    compile: str = "off",
    epochs: int = 2,
    **kw,
) -> float:
    """samples/s of cnnlab's Trainer (Adam 1e-3) on the first `samples` Fashion-MNIST images, data on `device`, in
    the last of `epochs` epochs (the earlier ones warm up and compile). The epoch's time ends with a device sync
    (the `.item()` of its metrics)."""
    data = fashion(seed).train.subset(slice(0, samples))
    torch.manual_seed(seed)
    model = create_model(model_name, num_classes=10, in_chans=1, **kw)
    trainer = Trainer(
        model, build_optimizer("adam", model.parameters(), 1e-3), device=device, precision=precision, compile=compile
    )
    loader = InMemoryLoader(
        data,
        batch_size,
        shuffle=True,
        transform=Normalize(*channel_stats(data.images)),
        device=trainer.device,
        seed=seed,
    )
    return trainer.fit(loader, epochs)[-1]["samples_per_s"]


def cnnlab_cli_run(args: list[str], out: Path) -> dict:
    """Run `cnnlab train` as a user does; returns metrics.json plus the wall time from process start."""
    t = time.perf_counter()
    cmd = [sys.executable, "-m", "cnnlab", "train", *args, "--out", str(out), "--overwrite", "--verbose", "0"]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    metrics = json.loads((out / "metrics.json").read_text())
    metrics["wall_s"] = time.perf_counter() - t
    return metrics


CLI_TABLE = ["| command | seeds | test accuracy | wall s from process start | training s |", "|---|---|---|---|---|"]


def cli_row(label: str, args: list[str], seeds: list[int], log) -> str:
    """Run `cnnlab train ARGS --seed S` for every seed (run folders runs/benchmark/LABEL-S); one row of CLI_TABLE."""
    res = [cnnlab_cli_run([*args, "--seed", str(s)], ROOT / "runs" / "benchmark" / f"{label}-{s}") for s in seeds]
    acc = [100 * r["test_accuracy"] for r in res]
    wall = fmt([r["wall_s"] for r in res], 1)
    log(f"{label}: test accuracy {fmt(acc, 2)} %, wall {wall} s")
    return (
        f"| `cnnlab train {' '.join(args)}` | {', '.join(map(str, seeds))} | {fmt(acc, 2)} % | {wall} "
        f"| {fmt([r['train_seconds'] for r in res], 1)} |"
    )


class StopAt(Callback):
    """Lay the run out over exactly `steps` steps (as a time budget's plan does) and stop there."""

    order = 0

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def on_train_begin(self, logs: dict) -> None:
        self.trainer.plan(self.steps)

    def on_batch_end(self, batch: int, logs: dict) -> None:
        if self.trainer.step >= self.steps:
            self.trainer.stop("planned steps done")
