"""Archived exploration, finished: the plain-torch prototype of the `fast` recipe (small BN conv net, one-cycle SGD).

It measured which network and schedule to build `cnnlab train --recipe fast` (src/cnnlab/recipes/fast.yaml) from,
for the project's targets of 90 % test accuracy in ≤ 30 s and 93 % in ≤ 3 min on a 2-core CPU:

    python -m benchmarks.archive.explore_fast_recipe WIDTHS EPOCHS BATCH PEAK_LR [--translate]

e.g. `python -m benchmarks.archive.explore_fast_recipe 16,32,64,128 2 256 0.2`. Prints wall time and test accuracy
(with horizontal-flip test-time augmentation) after each epoch. Net: conv3×3-BN-ReLU blocks, widths W0 → (W1, pool,
W1) → (W2, pool, W2) → (W3, pool) → global max pool → linear; SGD Nesterov 0.9, wd 5e-4, label smoothing 0.1,
one-cycle (25 % warm-up, linear), random mirror, bf16 autocast + channels_last.

Results (2026-11-22, five settings, seed 0): BENCHMARKS.md, "The `fast` recipe's prototype".
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.data import Normalize, channel_stats, load_dataset


def cbr(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("widths")
    p.add_argument("epochs", type=int)
    p.add_argument("batch", type=int)
    p.add_argument("lr", type=float)
    p.add_argument("--translate", action="store_true", help="random ±2 px shift of the whole batch")
    args = p.parse_args()
    torch.manual_seed(0)
    w = [int(v) for v in args.widths.split(",")]
    s = load_dataset("fashion-mnist", val_split=0)
    x, y, xt, yt = s.train.images, s.train.labels, s.test.images, s.test.labels
    norm = Normalize(*channel_stats(x))
    net = nn.Sequential(
        *cbr(1, w[0]),
        *cbr(w[0], w[1]),
        nn.MaxPool2d(2),
        *cbr(w[1], w[1]),
        *cbr(w[1], w[2]),
        nn.MaxPool2d(2),
        *cbr(w[2], w[2]),
        *cbr(w[2], w[3]),
        nn.MaxPool2d(2),
        nn.AdaptiveMaxPool2d(1),
        nn.Flatten(),
        nn.Linear(w[3], 10),
    ).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    steps = args.epochs * (len(x) // args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, args.lr, total_steps=steps, pct_start=0.25, anneal_strategy="linear"
    )

    def test_accuracy() -> float:
        net.eval()
        correct = 0
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16):
            for i in range(0, len(xt), 1000):
                xb = norm(xt[i : i + 1000]).contiguous(memory_format=torch.channels_last)
                logits = net(xb).float() + net(xb.flip(3)).float()  # flip TTA
                correct += (logits.argmax(1) == yt[i : i + 1000]).sum().item()
        net.train()
        return correct / len(xt)

    start = time.perf_counter()
    for epoch in range(args.epochs):
        perm = torch.randperm(len(x))
        for i in range(len(x) // args.batch):
            idx = perm[i * args.batch : (i + 1) * args.batch]
            xb = norm(x[idx])
            xb = torch.where((torch.rand(len(idx)) < 0.5).view(-1, 1, 1, 1), xb.flip(3), xb)
            if args.translate:
                xb = torch.roll(xb, tuple(torch.randint(-2, 3, (2,)).tolist()), (2, 3))
            xb = xb.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", torch.bfloat16):
                loss = F.cross_entropy(net(xb).float(), y[idx], label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        elapsed = time.perf_counter() - start
        print(f"epoch {epoch + 1}: {elapsed:.1f} s, test accuracy {test_accuracy():.4f}", flush=True)


if __name__ == "__main__":
    main()
