"""Streaming against in-memory data on a generated folder of JPEGs (default 20,000 of 96×96 RGB, 10 classes).

    PYTHONPATH=src python -m benchmarks.features.streaming [--n 20000] [--size 96] [--folder DIR]
                                                           [--train-only | --no-train] [--train-limit 30s]

Measures: pillow decode throughput in one process (images/s per worker); the StreamingFolderLoader's epoch
throughput with 1 and 2 DataLoader workers (uint8 batches of 256, normalised, as the Trainer receives them);
the in-memory path (reading the folder into memory once, then an epoch of InMemoryLoader); and one training epoch
of lenet5 through `cnnlab train` with and without --stream.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks import ROOT
from cnnlab.data import InMemoryLoader, Normalize
from cnnlab.data.folder import read_image_folder
from cnnlab.data.streaming import StreamingFolderLoader, file_set
from cnnlab.runtime import cpu_isa


def make_folder(root: Path, n: int, size: int, classes: int = 10) -> Path:
    rng = np.random.default_rng(0)
    for k in range(classes):
        (root / f"class{k}").mkdir(parents=True, exist_ok=True)
    base = rng.integers(0, 255, (classes, size // 8, size // 8, 3)).astype(np.uint8)
    for i in range(n):
        k = i % classes
        img = np.kron(base[k], np.ones((8, 8, 1), np.uint8)) + rng.integers(0, 40, (size, size, 3)).astype(np.uint8)
        Image.fromarray(img).save(root / f"class{k}" / f"{i:05d}.jpg", quality=90)
    return root


def epoch_rate(loader) -> float:
    t, n = time.perf_counter(), 0
    for x, _ in loader.batches():
        n += x.shape[0]
    return n / (time.perf_counter() - t)


def train_rate(folder: Path, out: Path, stream: bool, limit: str | None = None) -> tuple[float, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "CNNLAB_OFFLINE": "1"}
    cmd = [
        sys.executable,
        "-m",
        "cnnlab",
        "train",
        "--data",
        f"folder:{folder}",
        "--model",
        "lenet5",
        "--epochs",
        "1",
        "--batch-size",
        "256",
        "--precision",
        "fp32",
        "--threads",
        "1",
        "--verbose",
        "0",
        "--out",
        str(out),
        "--overwrite",
        *(["--stream"] if stream else []),
        *(["--time-limit", limit] if limit else []),
    ]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    with open(out / "history.csv") as f:
        return float(list(csv.DictReader(f))[-1]["samples_per_s"]), wall


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--folder", help="reuse this generated folder")
    p.add_argument("--train-only", action="store_true", help="only the two `cnnlab train` runs")
    p.add_argument("--no-train", action="store_true", help="decode and loader rates only")
    p.add_argument("--train-limit", help="--time-limit of each training run (its partial epoch's rate is reported)")
    a = p.parse_args()
    torch.set_num_threads(1)
    print(
        f"CPU ISA {cpu_isa()}, {os.cpu_count()} logical CPUs, load average {os.getloadavg()[0]:.1f}; "
        f"torch {torch.__version__}"
    )
    folder = Path(a.folder) if a.folder else Path(tempfile.mkdtemp(prefix="cnnlab-jpegs-")) / "jpegs"
    if not folder.exists():
        t = time.perf_counter()
        make_folder(folder, a.n, a.size)
        print(f"wrote {a.n:,} {a.size}×{a.size} JPEGs to {folder} in {time.perf_counter() - t:.1f} s")
    mb = sum(f.stat().st_size for f in folder.rglob("*.jpg")) / 1e6
    files = file_set(folder, None, None, seed=0)
    print(f"{len(files):,} files, {mb:.0f} MB of JPEG; decoded uint8: {len(files) * 3 * a.size * a.size / 1e6:.0f} MB")
    tmp = folder.parent
    if a.train_only:
        return train_runs(folder, tmp, a.train_limit)
    data = files.dataset()
    t, k = time.perf_counter(), 2000
    for i in range(k):
        data[i]
    print(f"pillow decode in one process: {k / (time.perf_counter() - t):,.0f} images/s per worker")
    norm = Normalize(*[[0.5] * 3, [0.25] * 3])
    for workers in (1, 2):
        loader = StreamingFolderLoader(files, 256, shuffle=True, transform=norm, workers=workers)
        print(f"StreamingFolderLoader, {workers} worker(s): {epoch_rate(loader):,.0f} images/s over one epoch")
    t = time.perf_counter()
    memory = read_image_folder(folder)
    read_s = time.perf_counter() - t
    rate = epoch_rate(InMemoryLoader(memory, 256, shuffle=True, transform=norm))
    print(
        f"in memory: reading the folder took {read_s:.1f} s ({len(memory) / read_s:,.0f} images/s), then an "
        f"epoch of InMemoryLoader {rate:,.0f} images/s"
    )
    if not a.no_train:
        train_runs(folder, tmp, a.train_limit)


def train_runs(folder: Path, tmp: Path, limit: str | None) -> None:
    for stream in (False, True):
        rate, wall = train_rate(folder, tmp / f"run-{stream}", stream, limit)
        print(
            f"cnnlab train lenet5 1 epoch{f' (--time-limit {limit})' if limit else ''} "
            f"{'--stream' if stream else 'in memory'}: {rate:,.0f} samples/s training, {wall:.1f} s for the "
            f"whole command; load average {os.getloadavg()[0]:.1f}"
        )


if __name__ == "__main__":
    main()
