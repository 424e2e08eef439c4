"""Data-parallel throughput on this CPU: `cnnlab train` of lecture_cnn in 1 process × 2 threads against
2 processes × 1 thread (torchrun, gloo), and the equivalence of 2 ranks × 32 with 1 process × 64.

    PYTHONPATH=src python -m benchmarks.features.distributed [--samples 4096] [--reps 2]

Run from the repository root: the generated data come from tests.conftest.write_fake_idx.

Training samples/s is the second epoch's (the first warms up), as history.csv reports it: over all ranks.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file
from tests.conftest import write_fake_idx

from benchmarks import ROOT
from cnnlab.runtime import cpu_isa


def run(args: list[str], nproc: int, threads: int) -> tuple[float, float]:
    """(samples/s of the last epoch, wall seconds of the whole command)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": str(threads), "CNNLAB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "cnnlab", "train", *args, "--threads", str(threads), "--verbose", "0"]
    if nproc > 1:
        cmd += ["--nproc", str(nproc)]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    out = Path(args[args.index("--out") + 1])
    with open(out / "history.csv") as f:
        return float(list(csv.DictReader(f))[-1]["samples_per_s"]), wall


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--samples", type=int, default=4096)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--model", default="lecture_cnn")
    p.add_argument("--batch-size", type=int, default=128)
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cnnlab-dist-bench-"))
    data = write_fake_idx(tmp / "data", a.samples + 256, 256)
    base = [
        "--data",
        "fashion-mnist",
        "--data-dir",
        str(data),
        "--model",
        a.model,
        "--epochs",
        "2",
        "--val-split",
        "256",
        "--batch-size",
        str(a.batch_size),
        "--precision",
        "fp32",
    ]
    print(
        f"CPU ISA {cpu_isa()}, {os.cpu_count()} logical CPUs, load average {os.getloadavg()[0]:.1f}; "
        f"torch {torch.__version__}, Python {platform.python_version()}"
    )
    results: dict[str, list] = {"1 process × 2 threads": [], "2 processes × 1 thread": []}
    for rep in range(a.reps):
        for label, nproc, threads in (("1 process × 2 threads", 1, 2), ("2 processes × 1 thread", 2, 1)):
            rate, wall = run([*base, "--out", str(tmp / f"{nproc}-{rep}"), "--overwrite"], nproc, threads)
            results[label].append((rate, wall))
            print(f"{label}: {rate:,.0f} samples/s (epoch 2), {wall:.1f} s wall for the whole command")
    print("| set-up | samples/s (epoch 2), each run | mean | whole command, s |")
    print("|---|---|---|---|")
    for label, rows in results.items():
        rates = [r for r, _ in rows]
        print(
            f"| {label} | {', '.join(f'{r:,.0f}' for r in rates)} | {sum(rates) / len(rates):,.0f} | "
            f"{', '.join(f'{w:.1f}' for _, w in rows)} |"
        )

    # equivalence: 20 steps of lenet5, fp32, SGD; 2 × 32 against 1 × 64
    eq = write_fake_idx(tmp / "eq", 704, 100)
    common = [
        "--data",
        "fashion-mnist",
        "--data-dir",
        str(eq),
        "--model",
        "lenet5",
        "--epochs",
        "2",
        "--val-split",
        "64",
        "--batch-size",
        "64",
        "--precision",
        "fp32",
        "--optimizer",
        "sgd",
        "--lr",
        "0.05",
    ]
    run([*common, "--out", str(tmp / "eq1")], 1, 1)
    run([*common, "--out", str(tmp / "eq2")], 2, 1)
    w1, w2 = load_file(tmp / "eq1" / "model.safetensors"), load_file(tmp / "eq2" / "model.safetensors")
    diff = max((w1[k] - w2[k]).abs().max().item() for k in w1)
    m1, m2 = (json.loads((tmp / r / "metrics.json").read_text()) for r in ("eq1", "eq2"))
    print(
        f"equivalence (lenet5, fp32, 20 SGD steps): max |w(2 × 32) − w(1 × 64)| = {diff:.3g}; "
        f"test accuracy {m1['test_accuracy']:.4f} vs {m2['test_accuracy']:.4f}"
    )


if __name__ == "__main__":
    main()
