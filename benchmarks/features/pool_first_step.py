"""The Trainer's step with each ReLU after its max pool (`cnnlab.layers.pool_first`, what the Trainer runs) against
the model's own forward, interleaved in one process, with each rate's share of the matrix-product peak.

    python -m benchmarks.features.pool_first_step                          # fast and best recipes' nets, lecture_cnn
    python -m benchmarks.features.pool_first_step --precision fp32 --nets lenet5,lecture_cnn
    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 python -m benchmarks.features.pool_first_step --precision fp32

Each net trains through a `Trainer` (channels_last and bf16 autocast where the precision says, Nesterov SGD, label
smoothing 0.1) on a fixed random batch: 10 untimed steps each way, then `--rounds` rounds, each timing a block of
`--steps` steps with the model's forward and a block with the trace; the report gives each way's median ms per step,
samples/s, GFLOP/s (3 × 2 × MACs per sample) and share of the peak (the larger of MKL's and oneDNN's 2048³ product in
the same precision, measured in the same process), and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from benchmarks._common import matmul_peak
from benchmarks.features.time_budget import cpu_description
from cnnlab import runtime
from cnnlab.inspect import summary
from cnnlab.layers.pool_first import PoolFirst
from cnnlab.models import create_model
from cnnlab.recipes import list_recipes, read_recipe
from cnnlab.train.trainer import Trainer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nets", default="fast,best,lecture_cnn", help="recipe names (their net) or models, comma list")
    p.add_argument("--precision", default="auto")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--steps", type=int, default=20)
    a = p.parse_args()
    runtime.reuse_freed_memory()  # malloc as `cnnlab train` sets it
    precision = runtime.resolve_precision(a.precision, torch.device("cpu"))
    with runtime.use_threads(a.threads):
        peak = max(matmul_peak(torch.bfloat16 if precision == "bf16" else torch.float32, n=2048).values())
        print(
            f"CPU: {cpu_description()}; ISA {runtime.cpu_isa()}; torch {torch.__version__}; {a.threads} threads, "
            f"{precision}, batch {a.batch}; {precision} matrix-product peak {peak:,.0f} GFLOP/s\n\n"
            "| net | forward | ms per step (median) | samples/s | GFLOP/s | share of peak | speed-up |\n"
            "|---|---|---|---|---|---|---|",
            flush=True,
        )
        for name in a.nets.split(","):
            net = read_recipe(name, precision)["model"] if name in list_recipes() else name
            row(net, name, precision, a, peak)


def row(net: str, label: str, precision: str, a, peak: float) -> None:
    torch.manual_seed(0)
    model = create_model(net, num_classes=10, in_chans=1, img_size=28)
    flops = 3 * 2 * summary(model, (1, 28, 28))["macs"] * a.batch
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    trainer = Trainer(model, opt, F.cross_entropy, device="cpu", precision=precision, threads=a.threads)
    assert isinstance(trainer.forward, PoolFirst), f"{net}: no ReLU feeds a max pool"
    ways = {"the model's": trainer.model, "ReLU after the pool": trainer.forward}
    x = torch.randn(a.batch, 1, 28, 28)
    x = x.contiguous(memory_format=torch.channels_last) if trainer.channels_last else x
    y = torch.randint(0, 10, (a.batch,))
    times: dict[str, list[float]] = {w: [] for w in ways}
    for rnd in range(a.rounds + 1):
        for way, forward in ways.items():
            trainer.forward = forward
            start = time.perf_counter()
            for _ in range(a.steps if rnd else 10):
                trainer.train_step(x, y)
            if rnd:  # round 0 warms both up
                times[way].append((time.perf_counter() - start) / a.steps)
    base = statistics.median(times["the model's"])
    for way, ts in times.items():
        s = statistics.median(ts)
        print(
            f"| {label} | {way} | {s * 1e3:.2f} | {a.batch / s:,.0f} | {flops / s / 1e9:,.0f} | "
            f"{flops / s / 1e9 / peak:.1%} | {base / s:.2f}× |",
            flush=True,
        )


if __name__ == "__main__":
    main()
