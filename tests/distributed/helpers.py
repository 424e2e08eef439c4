"""Running `cnnlab train` under torchrun in subprocesses (gloo on this CPU)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[2] / "src")
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]


def env(**extra: str) -> dict:
    e = {
        **os.environ,
        "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "OMP_NUM_THREADS": "1",
        "CNNLAB_OFFLINE": "1",
        "CNNLAB_DIST_TIMEOUT": "20",
        "PYTHONFAULTHANDLER": "1",  # a rank that aborts (SIGABRT, SIGSEGV) prints every thread's Python stack
    }
    e.update(extra)
    return e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_args(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "-m",
        "cnnlab",
        "train",
        "--data",
        "fashion-mnist",
        "--data-dir",
        str(data),
        "--model",
        "lenet5",
        "--precision",
        "fp32",
        "--threads",
        "1",
        "--verbose",
        "0",
        "--out",
        str(out),
        *extra,
    ]


def torchrun(nproc: int, args: list[str], timeout: float = 240, **popen) -> subprocess.CompletedProcess:
    cmd = [*TORCHRUN, "--standalone", f"--nproc-per-node={nproc}", *args]
    return subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=timeout, **popen)


def single(args: list[str], timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], env=env(), capture_output=True, text=True, timeout=timeout)
