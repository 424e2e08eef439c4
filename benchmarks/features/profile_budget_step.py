"""Where a training step of the `fast` recipe (or `--recipe best`) spends its time on this CPU, for the variant `precision auto` picks.

    python -m benchmarks.features.profile_budget_step                                   # this CPU as it is
    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 python -m benchmarks.features.profile_budget_step  # as AVX2-only

One SGD step at the recipe's batch (channels_last, bf16 autocast where auto picks it, malloc set as `cnnlab train`
sets it, the forward with each ReLU after the max pool it feeds, as the Trainer runs it) is profiled with
torch.profiler over 20 steps after warm-up, and each operator's self CPU time is shown as its share of the profiled
time. The step's arithmetic (3 × forward MACs × 2 FLOP, from `cnnlab summary`) against the measured step time
gives the GFLOP/s the step reaches, next to the machine's matrix-product peak in the same precision (measured here):
the distance between the two is what a faster recipe could still win on this CPU at this model size. Its last line
is the ceiling the rest of the step (batch norm, ReLU, pooling, the optimizer) sets: the share of peak were the
convolutions free.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from benchmarks._common import matmul_peak
from benchmarks.features.time_budget import cpu_description
from cnnlab import runtime
from cnnlab.inspect import summary
from cnnlab.layers.pool_first import pool_first
from cnnlab.models import create_model
from cnnlab.recipes import read_recipe

# the operators that do a convolution's arithmetic (forward, and the input and weight gradients)
CONVOLUTION_OPS = {"aten::mkldnn_convolution", "aten::convolution_backward", "aten::_convolution"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--top", type=int, default=8, help="operators to list")
    p.add_argument("--recipe", default="fast", help="the recipe whose net and batch are profiled (fast, best)")
    p.add_argument("--model", default=None, help="another net (course notation) at the recipe's batch")
    a = p.parse_args()
    runtime.reuse_freed_memory()  # malloc as `cnnlab train` sets it
    torch.manual_seed(0)
    precision = runtime.resolve_precision("auto", torch.device("cpu"))
    recipe = read_recipe(a.recipe, precision)
    recipe["model"] = a.model or recipe["model"]
    batch = recipe["batch_size"]
    model = create_model(recipe["model"], num_classes=10, in_chans=1).to(memory_format=torch.channels_last)
    flops = 3 * 2 * summary(model, (1, 28, 28))["macs"] * batch
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    x = torch.randn(batch, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))
    forward = pool_first(model)  # as the Trainer runs it: each ReLU that feeds a max pool after the pool

    def step() -> None:
        with torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16"):
            loss = F.cross_entropy(forward(x), y, label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(5):
        step()
    start = time.perf_counter()
    for _ in range(a.steps):
        step()
    step_s = (time.perf_counter() - start) / a.steps
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(a.steps):
            step()
    ops = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in ops)
    peak = max(matmul_peak(torch.bfloat16 if precision == "bf16" else torch.float32, n=2048).values())
    print(
        f"CPU: {cpu_description()}; ISA {runtime.cpu_isa()}; torch {torch.__version__}, {torch.get_num_threads()} "
        f"threads\n"
    )
    print(f"`{a.recipe}` recipe as it runs in {precision}: `{recipe['model']}`, batch {batch}, channels_last")
    print(
        f"step {step_s * 1e3:.1f} ms = {batch / step_s:,.0f} samples/s; {flops / 1e9:.2f} GFLOP per step → "
        f"{flops / step_s / 1e9:.0f} GFLOP/s, {flops / step_s / 1e9 / peak:.0%} of the {precision} matrix-product "
        f"peak ({peak:.0f} GFLOP/s)\n"
    )
    print("| operator | share of profiled CPU time |\n|---|---|")
    for e in ops[: a.top]:
        print(f"| `{e.key}` | {e.self_cpu_time_total / total:.1%} |")
    conv = sum(e.self_cpu_time_total for e in ops if e.key in CONVOLUTION_OPS) / total
    rest_s = step_s * (1 - conv)
    print(
        f"\nthe convolutions' kernels {conv:.0%} of the step; the rest ({rest_s * 1e3:.1f} ms) alone caps the step at "
        f"{flops / rest_s / 1e9:.0f} GFLOP/s = {flops / rest_s / 1e9 / peak:.0%} of the peak, were the convolutions free"
    )


if __name__ == "__main__":
    main()
