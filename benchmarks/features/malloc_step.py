"""A training step with glibc's malloc as it comes against `runtime.reuse_freed_memory` (what `cnnlab train`
sets), each in fresh processes, interleaved.

    python -m benchmarks.features.malloc_step                       # the fast recipe's fp32 net, batch 128, 2 threads
    python -m benchmarks.features.malloc_step --net lecture_cnn --rounds 6

Each child builds the net (channels_last, fused Nesterov SGD as the recipe trains it), takes 10 untimed steps on a
fixed random batch, then times 5 blocks of 20 steps and prints its fastest block's ms per step. Rounds alternate
the two settings; the report gives each setting's median over the rounds and the ratio, with the CPU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

import torch

from benchmarks.features.time_budget import cpu_description
from cnnlab.runtime import cpu_isa, is_malloc_setting

NET = "CL16k3-MP4-BN-CL32k3-MP4-BN-CL64k3-MP4-BN-CL128k3-BN-GAP-FC10"

CHILD = """
import sys, time
from cnnlab.runtime import reuse_freed_memory
if sys.argv[1] == "reuse":
    assert reuse_freed_memory()
import torch
import torch.nn.functional as F
from cnnlab.models import create_model
from cnnlab.train import build_optimizer
torch.set_num_threads(int(sys.argv[4]))
torch.manual_seed(0)
model = create_model(sys.argv[2], num_classes=10, in_chans=1).to(memory_format=torch.channels_last)
batch = int(sys.argv[3])
x = torch.randn(batch, 1, 28, 28).contiguous(memory_format=torch.channels_last)
y = torch.randint(0, 10, (batch,))
opt = build_optimizer("sgd", model, 0.01, nesterov=True, weight_decay=5e-4)
def step():
    opt.zero_grad()
    F.cross_entropy(model(x), y).backward()
    opt.step()
for _ in range(10):
    step()
best = float("inf")
for _ in range(5):
    t = time.perf_counter()
    for _ in range(20):
        step()
    best = min(best, (time.perf_counter() - t) / 20)
print(best * 1e3)
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--net", default=NET)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=4)
    a = p.parse_args()
    env = {k: v for k, v in os.environ.items() if not is_malloc_setting(k)}
    times: dict[str, list[float]] = {"default": [], "reuse": []}
    for r in range(a.rounds):
        for mode in ("default", "reuse") if r % 2 == 0 else ("reuse", "default"):
            cmd = [sys.executable, "-c", CHILD, mode, a.net, str(a.batch), str(a.threads)]
            out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
            times[mode].append(float(out.stdout.split()[-1]))
    print(f"CPU: {cpu_description()}; ISA {cpu_isa()}; torch {torch.__version__}")
    print(f"{a.net}, batch {a.batch}, {a.threads} thread(s), fp32, {a.rounds} rounds (fresh processes)")
    for mode, what in (("default", "glibc malloc as it comes"), ("reuse", "reuse_freed_memory")):
        ms = times[mode]
        print(f"  {what:26s} {statistics.median(ms):6.2f} ms/step (median; {min(ms):.2f}–{max(ms):.2f})")
    print(f"  speed-up: {statistics.median(times['default']) / statistics.median(times['reuse']):.2f}×")


if __name__ == "__main__":
    main()
