"""Where the fast recipe's fp32 step could still go faster: each convolution alone, and max-pool before the ReLU.

    python -m benchmarks.features.step_layers                      # the fast recipe's fp32 net, batch 128, 2 threads
    python -m benchmarks.features.step_layers --net CL16k3-BN-MP4-… --batch 256

1. Every convolution of the net timed alone on the input it sees in the model (channels_last, forward, and forward +
   backward with the input's gradient where the model needs it), with its GFLOP/s: the step cannot be faster than
   these added up.
2. The whole SGD step against the same net with each 2×2 max-pool moved before the ReLU that precedes it
   (relu(max(x)) = max(relu(x)): ReLU and its backward then run on a quarter of the values). The two nets' loss and
   gradients are checked equal first; the steps are timed interleaved (`runtime.measure`).

Malloc is set as `cnnlab train` sets it (`runtime.reuse_freed_memory`). Results: BENCHMARKS.md, "Time budget per
instruction set" (the fp32 share of peak).
"""

from __future__ import annotations

import argparse
import copy

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.features.time_budget import cpu_description
from cnnlab.models import create_model
from cnnlab.runtime import cpu_isa, measure, reuse_freed_memory

NET = "CL16k3-MP4-BN-CL32k3-MP4-BN-CL64k3-MP4-BN-CL128k3-BN-GAP-FC10"


def conv_inputs(model: nn.Module, x: torch.Tensor) -> list[tuple[nn.Conv2d, torch.Tensor]]:
    """Each convolution with the input it receives in a forward pass of `x`."""
    seen = []
    hooks = [
        m.register_forward_pre_hook(lambda m, a: seen.append((m, a[0].detach())))
        for m in model.modules()
        if isinstance(m, nn.Conv2d)
    ]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return seen


def pool_first(model: nn.Module) -> nn.Module:
    """A copy of `model` with every ReLU → MaxPool2d pair of its `features` swapped."""
    other = copy.deepcopy(model)
    layers = list(other.features)
    for i in range(len(layers) - 1):
        if isinstance(layers[i], nn.ReLU) and isinstance(layers[i + 1], nn.MaxPool2d):
            layers[i], layers[i + 1] = layers[i + 1], layers[i]
    other.features = nn.Sequential(*layers)
    return other


def sgd_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)

    def step() -> None:
        loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--net", default=NET)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    reuse_freed_memory()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = create_model(a.net, num_classes=10, in_chans=1).to(memory_format=torch.channels_last)
    x = torch.randn(a.batch, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (a.batch,))
    print(f"CPU: {cpu_description()}; ISA {cpu_isa()}; torch {torch.__version__}, {a.threads} threads, fp32")
    print(f"{a.net}, batch {a.batch}, channels_last\n")
    print("| convolution | input | forward ms | GFLOP/s | forward + backward ms | GFLOP/s |\n|---|---|---|---|---|---|")
    total = 0.0
    for conv, inp in conv_inputs(model, x):
        inp = inp.clone().requires_grad_(inp.shape[1] > 1)  # the first layer's input needs no gradient
        out = conv(inp)
        grad = torch.randn_like(out)

        def both(conv=conv, inp=inp, grad=grad) -> None:
            conv.zero_grad(set_to_none=True)
            conv(inp).backward(grad)

        with torch.no_grad():
            t = measure({"fwd": lambda conv=conv, inp=inp: conv(inp)}, rounds=3, block_s=0.2)["fwd"]
        tb = measure({"both": both}, rounds=3, block_s=0.2)["both"]
        flop = 2 * out.numel() * conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
        backward = 2 if inp.requires_grad else 1  # weight gradient, and the input's where needed
        total += tb
        print(
            f"| {conv.in_channels}→{conv.out_channels} k{conv.kernel_size[0]} | {tuple(inp.shape[1:])} | {t * 1e3:.2f} | "
            f"{flop / t / 1e9:.0f} | {tb * 1e3:.2f} | {flop * (1 + backward) / tb / 1e9:.0f} |"
        )
    other = pool_first(model)
    loss = [F.cross_entropy(m(x), y) for m in (model, other)]
    for m, value in zip((model, other), loss, strict=True):
        m.zero_grad(set_to_none=True)
        value.backward()
    same = torch.equal(loss[0], loss[1]) and all(
        torch.equal(p.grad, q.grad) for p, q in zip(model.parameters(), other.parameters(), strict=True)
    )
    times = measure({"as built": sgd_step(model, x, y), "pool first": sgd_step(other, x, y)}, rounds=6, block_s=0.5)
    print(f"\nthe convolutions alone, forward + backward: {total * 1e3:.1f} ms")
    print(f"whole SGD step as built: {times['as built'] * 1e3:.1f} ms")
    print(
        f"max-pool before the ReLU: {times['pool first'] * 1e3:.1f} ms = "
        f"{times['as built'] / times['pool first']:.3f}× as fast; loss and gradients identical: {same}"
    )


if __name__ == "__main__":
    main()
