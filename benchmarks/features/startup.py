"""What a `cnnlab train` process spends before its first training step and after its last: the fixed costs a
`--time-budget` run pays out of its budget.

    python -m benchmarks.features.startup                  # 5 rounds, the fast recipe on Fashion-MNIST
    python -m benchmarks.features.startup --rounds 9 --args "--recipe best"

Each round starts fresh processes, one after another: `python -c "import torch"` (the floor no torch program goes
below), then `cnnlab train ARGS --epochs 1 --max-train-samples 1000` with the Trainer's step wrapped to note the time
of its first call. Reported per process, the median over the rounds: seconds from the interpreter's start to the
first training step, to the end of the command, and whether torch._dynamo was imported (its import is 1.3–1.9 s of a
start on a 2-core Zen 3; `cnnlab.train.optim` avoids it). The CPU and its flags head the report.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from benchmarks.features.time_budget import cpu_description
from cnnlab.runtime import cpu_isa

# The child: times from its own start (the interpreter's start is ~20 ms earlier; the same for every row).
CHILD = """
import json, sys, time
t0 = time.perf_counter()
import cnnlab.train.trainer as trainer
first = []
step = trainer.Trainer.train_step
def timed(self, *a, **k):
    if not first:
        first.append(time.perf_counter() - t0)
    return step(self, *a, **k)
trainer.Trainer.train_step = timed
from cnnlab.cli import main
code = main(sys.argv[1:])
print("STARTUP " + json.dumps({"first_step_s": first[0] if first else None, "end_s": time.perf_counter() - t0,
    "dynamo": "torch._dynamo" in sys.modules, "code": code}))
"""


def one_round(args: list[str], out: Path) -> dict:
    floor = subprocess.run(
        [sys.executable, "-c", "import time; t = time.perf_counter(); import torch; print(time.perf_counter() - t)"],
        capture_output=True,
        text=True,
        check=True,
    )
    cmd = [sys.executable, "-c", CHILD, "train", *args, "--epochs", "1", "--max-train-samples", "1000"]
    run = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True)
    line = next((x for x in run.stdout.splitlines() if x.startswith("STARTUP ")), None)
    if line is None:
        raise SystemExit(f"the training process failed:\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}")
    return {"import_torch_s": float(floor.stdout), **json.loads(line[len("STARTUP ") :])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--args", default="--recipe fast", help="cnnlab train arguments (default: --recipe fast)")
    p.add_argument("--rounds", type=int, default=5)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [one_round(shlex.split(a.args), Path(tmp) / f"run{i}") for i in range(a.rounds)]
    print(f"CPU: {cpu_description()}; ISA {cpu_isa()}; torch {torch.__version__}; {a.rounds} rounds")
    print(
        f"`cnnlab train {a.args} --epochs 1 --max-train-samples 1000`, seconds from the interpreter's start "
        "(median, min–max)"
    )
    for key, what in (
        ("import_torch_s", "`import torch` alone"),
        ("first_step_s", "first training step"),
        ("end_s", "end of the command"),
    ):
        values = [r[key] for r in rows]
        print(f"  {what:22s} {statistics.median(values):5.2f} s ({min(values):.2f}–{max(values):.2f})")
    print(f"  torch._dynamo imported: {sorted({r['dynamo'] for r in rows})}")


if __name__ == "__main__":
    main()
