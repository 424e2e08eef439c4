"""Training throughput on a busy machine: fixed thread counts against cnnlab's measured choice, run by run.

    python -m benchmarks.features.busy_threads [--model lenet5] [--images 8000] [--seeds 10]

Runs `cnnlab train --model M` on the first N Fashion-MNIST training images (one epoch, fp32) as whole processes,
first on an idle machine, then while another process keeps one core busy (a Python busy loop). For each seed the
three runs follow each other — `--threads 1`, `--threads 2` (torch's default: one per core) and the count cnnlab
measures at start (its cache off, so every run measures) — so they meet the same load. Prints a Markdown table of
samples/s (mean ± std over the seeds) and the project's check per run: on the busy machine the measured choice
within 10 % of the better fixed count's rate; on the idle one never fewer threads than the faster fixed count.
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
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "CNNLAB_THREADS_CACHE": "off"}
        subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    finally:
        if hog is not None:
            hog.kill()
    m = json.loads((out / "metrics.json").read_text())
    return m["samples_per_s"], m["hardware"]["threads"]


def verdict(busy: bool, fixed: dict[str, float], measured: float, used: int) -> bool:
    """The issue's check for one seed: busy — measured within 10 % of the best fixed rate; idle — no fewer threads
    than the faster fixed count."""
    best = max(fixed, key=fixed.get)
    return measured >= 0.9 * fixed[best] if busy else used >= int(best)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="lenet5")
    p.add_argument("--images", type=int, default=8000)
    p.add_argument("--seeds", type=int, default=10)
    a = p.parse_args()
    print(f"CPU: {cpu_description()}; torch {torch.__version__}, Python {platform.python_version()}")
    print(
        f"\n`cnnlab train --model {a.model} --epochs 1 --precision fp32` on {a.images:,} Fashion-MNIST images, "
        f"seeds 0–{a.seeds - 1}\n"
    )
    table, checks = [], []
    with tempfile.TemporaryDirectory() as tmp:
        data = write_subset(a.images, Path(tmp))
        for busy in (False, True):
            rows: dict[str, list[tuple[float, int]]] = {"1": [], "2": [], "measured": []}
            ok = 0
            for seed in range(a.seeds):
                for threads in ("1", "2", None):
                    rows[threads or "measured"].append(rate(data, a.model, threads, busy, seed, Path(tmp) / "run"))
                fixed = {t: rows[t][-1][0] for t in ("1", "2")}
                ok += verdict(busy, fixed, *rows["measured"][-1])
            label = "one core kept busy by another process" if busy else "idle"
            for name, runs in rows.items():
                what = f"--threads {name}" if name != "measured" else "measured (default)"
                used = ", ".join(f"{t}×{[u for _, u in runs].count(t)}" for t in sorted({u for _, u in runs}))
                table.append(f"| {label} | {what} | {fmt([r for r, _ in runs])} | {used} |")
            rule = "within 10 % of the better fixed count" if busy else "no fewer threads than the faster fixed count"
            checks.append(f"- {label}: measured choice {rule} in {ok} of {a.seeds} runs")
    print("| machine | threads | samples/s | threads used (count×runs) |\n|---|---|---|---|")
    print("\n".join(table))
    print("\n" + "\n".join(checks))


if __name__ == "__main__":
    main()
