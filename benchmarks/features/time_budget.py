"""Time to accuracy under `--time-budget`, per instruction set: whole `cnnlab train` processes, as a user runs them.

    python -m benchmarks.features.time_budget              # fast recipe, 30 s and 3 min, AVX2 and native, 3 seeds
    python -m benchmarks.features.time_budget --budgets 30s --isa avx2 --seeds 1 --args "--recipe fast --model CL16k3-…"
    python -m benchmarks.features.time_budget --busy       # also: 2 threads vs measured choice, one core kept busy

Each row runs `cnnlab train --data fashion-mnist ARGS --time-budget B --seed S` in a fresh process and reports test
accuracy (mean ± std over the seeds), the wall time from process start over the budget, the planned steps and
epochs, and the samples/s the run measured. `--isa avx2` sets ONEDNN_MAX_CPU_ISA=AVX2 and ATEN_CPU_CAPABILITY=avx2
(oneDNN and torch's own kernels then run as on an AVX2-only CPU: no AVX-512, no bf16, so precision auto picks
fp32); `native` leaves the CPU as it is. The report names the CPU, the ISA flags and the versions; paste it into
BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import torch

from benchmarks import ROOT
from benchmarks._common import fmt

# AVX2: oneDNN (convolutions, matmuls) capped by ONEDNN_MAX_CPU_ISA and torch's own kernels (element-wise, pooling,
# BN, the optimizer) by ATEN_CPU_CAPABILITY, so the whole step runs as on an AVX2-only CPU
ISAS = {"native": {}, "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}}


def cpu_description() -> str:
    text = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "?")
    flags = text.split("flags", 1)[1].split("\n", 1)[0].split()
    isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{model}, {os.cpu_count()} cores, flags: {' '.join(isa)}"


def run(args: list[str], budget: str, seed: int, isa: str, out: Path, busy: bool = False) -> dict:
    """One `cnnlab train` process; returns its metrics.json plus the wall time measured from outside."""
    env = {**os.environ, **ISAS[isa], "PYTHONUNBUFFERED": "1"}
    cmd = [
        sys.executable,
        "-m",
        "cnnlab",
        "train",
        "--data",
        "fashion-mnist",
        *args,
        "--time-budget",
        budget,
        "--seed",
        str(seed),
        "--out",
        str(out),
        "--overwrite",
        "--verbose",
        "0",
    ]
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
    finally:
        if hog is not None:
            hog.kill()
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    metrics["wall_s"] = wall
    metrics["log"] = proc.stdout
    return metrics


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--args", default="--recipe fast", help="cnnlab train arguments (default: --recipe fast)")
    p.add_argument("--budgets", default="30s,3m")
    p.add_argument("--isa", default="avx2,native", help="comma list of: " + ", ".join(ISAS))
    p.add_argument("--seeds", type=int, default=3, help="how many seeds: --first-seed, the next, …")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--busy", action="store_true", help="rows with another process keeping one core busy")
    opts = p.parse_args()
    args = shlex.split(opts.args)
    print(f"CPU: {cpu_description()}; torch {torch.__version__}, Python {platform.python_version()}", flush=True)
    print(
        "\n| ISA | command | seeds | test accuracy | wall / budget | planned steps (epochs) | samples/s | precision, "
        "threads |\n|---|---|---|---|---|---|---|---|",
        flush=True,
    )
    rows = [(isa, b, False) for isa in opts.isa.split(",") for b in opts.budgets.split(",")]
    if opts.busy:
        rows += [(isa, opts.budgets.split(",")[0], True) for isa in opts.isa.split(",")]
    seeds = range(opts.first_seed, opts.first_seed + opts.seeds)
    for isa, budget, busy in rows:
        label = f"{isa}-{budget}{'-busy' if busy else ''}"
        runs = [run(args, budget, s, isa, ROOT / "runs" / "benchmark" / f"budget-{label}-{s}", busy) for s in seeds]
        acc = [100 * r["test_accuracy"] for r in runs]
        secs = {"s": 1, "m": 60, "h": 3600}[budget[-1]] * float(budget[:-1]) if budget[-1] in "smh" else float(budget)
        ratio = [r["wall_s"] / secs for r in runs]
        steps = [r["steps"] for r in runs]
        epochs = [r["epochs"] for r in runs]
        rate = [r["samples_per_s"] or 0 for r in runs]
        how = f"{runs[0]['precision']}, {runs[0]['hardware']['threads']} thread(s)" + (
            ", one core busy" if busy else ""
        )
        print(
            f"| {runs[0]['hardware']['isa']} | `cnnlab train {opts.args} --time-budget {budget}` | "
            f"{', '.join(map(str, seeds))} | {fmt(acc, 2)} % | {fmt(ratio, 3)} | {fmt(steps)} "
            f"({fmt(epochs, 2)}) | {fmt(rate)} | {how} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
