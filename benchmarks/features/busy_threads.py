"""Training throughput on a busy machine: torch's default thread count against cnnlab's measured choice.

    python -m benchmarks.features.busy_threads [--model lenet5] [--images 8000] [--seeds 3]

Runs `cnnlab train --model M` on the first N Fashion-MNIST training images (one epoch, fp32) as whole processes,
first on an idle machine, then while another process keeps one core busy (a Python busy loop), each time with
`--threads 2` (torch's default: one per core) and with the thread count cnnlab measures at start. Prints a Markdown
table of samples/s (mean ± std over the seeds) with the CPU, ISA and versions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from benchmarks._common import fmt
from benchmarks.features.time_budget import cpu_description
from cnnlab.data import load_dataset


def write_subset(n: int, folder: Path) -> str:
    """The first n training images (and 2,000 test images) as an npz data source."""
    s = load_dataset("fashion-mnist", val_split=0)
    path = folder / "subset.npz"
    np.savez(
        path,
        x_train=s.train.images[:n, 0].numpy(),
        y_train=s.train.labels[:n].numpy(),
        x_test=s.test.images[:2000, 0].numpy(),
        y_test=s.test.labels[:2000].numpy(),
        class_names=np.array(s.classes),
    )
    return f"npz:{path}"


def rate(data: str, model: str, threads: str | None, busy: bool, seed: int, out: Path) -> tuple[float, int]:
    cmd = [
        sys.executable,
        "-m",
        "cnnlab",
        "train",
        "--data",
        data,
        "--model",
        model,
        "--epochs",
        "1",
        "--precision",
        "fp32",
        "--val-split",
        "0",
        "--seed",
        str(seed),
        "--out",
        str(out),
        "--overwrite",
        "--verbose",
        "0",
    ] + (["--threads", threads] if threads else [])
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        subprocess.run(cmd, check=True, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    finally:
        if hog is not None:
            hog.kill()
    m = json.loads((out / "metrics.json").read_text())
    return m["samples_per_s"], m["hardware"]["threads"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="lenet5")
    p.add_argument("--images", type=int, default=8000)
    p.add_argument("--seeds", type=int, default=3)
    a = p.parse_args()
    print(f"CPU: {cpu_description()}; torch {torch.__version__}, Python {platform.python_version()}")
    print(
        f"\n`cnnlab train --model {a.model} --epochs 1 --precision fp32` on {a.images:,} Fashion-MNIST images, "
        f"seeds 0–{a.seeds - 1}\n"
    )
    print("| machine | threads | samples/s | threads used |\n|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        data = write_subset(a.images, Path(tmp))
        for busy in (False, True):
            for threads in ("2", None):
                runs = [rate(data, a.model, threads, busy, s, Path(tmp) / "run") for s in range(a.seeds)]
                label = "one core kept busy by another process" if busy else "idle"
                used = sorted({t for _, t in runs})
                print(
                    f"| {label} | {'--threads 2 (torch default)' if threads else 'measured (default)'} | "
                    f"{fmt([r for r, _ in runs])} | {', '.join(map(str, used))} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
