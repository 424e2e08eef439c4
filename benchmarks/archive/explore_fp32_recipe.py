"""Archived exploration, finished: it chose the `fast` recipe's fp32 variant (`when_fp32` in fast.yaml, net D).

The fast recipe on CPUs without fast bf16: which network reaches the most accuracy in 30 s and 3 min of fp32
training? Results in BENCHMARKS.md, "The fast recipe on fp32-only CPUs".

    ONEDNN_MAX_CPU_ISA=AVX2 python -m benchmarks.archive.explore_fp32_recipe speed      # samples/s of each candidate
    python -m benchmarks.archive.explore_fp32_recipe accuracy --rates A=880,B=2100 ...  # accuracy at a fixed step count

Time to accuracy = (samples a net needs) × (seconds per sample on this CPU). The two factors are measured apart:
`speed` times training steps of every candidate interleaved in one process (so a busy machine slows all of them
alike; read the ratios), and `accuracy` trains each candidate for exactly the number of steps its rate allows in a
budget (minus the start-up and evaluation the budget also pays for), with the fast recipe's one-cycle schedule laid
out over those steps: a machine-independent workload. `benchmarks/features/time_budget.py` then checks the chosen net with
whole `cnnlab train --time-budget` processes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from benchmarks._common import StopAt
from cnnlab.data import Compose, InMemoryLoader, Normalize, channel_stats, load_dataset
from cnnlab.data.augment import Augment
from cnnlab.infer import predict_logits
from cnnlab.models import create_model
from cnnlab.runtime import cpu_isa
from cnnlab.train import Trainer, build_optimizer
from cnnlab.train.callbacks import LRScheduler
from cnnlab.train.losses import ClassificationLoss

CANDIDATES = {
    "A": "CL16k3-BN-CL32k3-BN-MP4-CL32k3-BN-CL64k3-BN-MP4-CL64k3-BN-CL128k3-BN-MP4-GAP-FC10",  # the fast recipe's
    "B": "CL32k3-BN-MP4-CL64k3-BN-MP4-CL128k3-BN-MP4-GAP-FC10",
    "C": "CL16k3-BN-MP4-CL32k3-BN-CL64k3-BN-MP4-CL64k3-BN-CL128k3-BN-MP4-GAP-FC10",
    "D": "CL24k3-BN-MP4-CL48k3-BN-MP4-CL96k3-BN-MP4-GAP-FC10",
    "E": "CL32k3-BN-MP4-CL64k3-BN-CL64k3-BN-MP4-CL128k3-BN-MP4-GAP-FC10",
}


def _trainer(notation: str, lr: float, precision: str = "fp32") -> Trainer:
    model = create_model(notation, num_classes=10, in_chans=1)
    opt = build_optimizer("sgd", model, lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    return Trainer(model, opt, ClassificationLoss(0.1), device="cpu", precision=precision)


def speed(names: list[str], batch: int, rounds: int) -> None:
    """Training samples/s per candidate: `rounds` rounds of 8 timed steps each, the candidates interleaved."""
    torch.manual_seed(0)
    x = torch.randn(batch, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))
    trainers = {n: _trainer(CANDIDATES[n], 0.01) for n in names}
    for t in trainers.values():
        t.model.train()
        for _ in range(3):
            t.train_step(x, y)
    times: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(rounds):
        for n, t in trainers.items():
            start = time.perf_counter()
            for _ in range(8):
                t.train_step(x, y)
            times[n].append((time.perf_counter() - start) / 8)
    base = statistics.median(times[names[0]])
    print(f"ISA {cpu_isa()}, {torch.get_num_threads()} threads, batch {batch}, fp32")
    for n in names:
        med = statistics.median(times[n])
        print(f"{n}: {batch / med:8,.0f} samples/s  ({base / med:.2f}× {names[0]})  {CANDIDATES[n]}")


def accuracy(
    names: list[str], rates: dict[str, float], budgets: list[float], overhead: float, seeds: int, batch: int, lr: float
) -> None:
    """Test accuracy (flip TTA) after the steps each candidate's rate allows in each budget."""
    splits = load_dataset("fashion-mnist", val_split=0)
    mean, std = channel_stats(splits.train.images)
    for budget in budgets:
        for n in names:
            steps = int((budget - overhead) * rates[n] / batch)
            accs = []
            for seed in range(seeds):
                torch.manual_seed(seed)
                t = _trainer(CANDIDATES[n], lr)
                t.callbacks.add(LRScheduler("onecycle"))
                t.callbacks.add(StopAt(steps))
                aug = Augment("flip", 10, seed=seed + 2)
                t.track("augment", aug)
                loader = InMemoryLoader(
                    splits.train, batch, shuffle=True, transform=Compose([aug, Normalize(mean, std)]), seed=seed + 1
                )
                t.fit(loader, 10_000)
                logits = predict_logits(t.model, splits.test.images, mean, std, "cpu", "fp32", tta=True)
                accs.append(100 * (logits.argmax(1) == splits.test.labels).float().mean().item())
            spread = statistics.stdev(accs) if len(accs) > 1 else 0.0
            print(
                f"budget {budget:g} s, {n}: {steps} steps ({steps * batch / len(splits.train):.2f} epochs) "
                f"→ {statistics.fmean(accs):.2f} ± {spread:.2f} %",
                flush=True,
            )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("speed", "accuracy"))
    p.add_argument("--names", default=",".join(CANDIDATES))
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--rates", default="", help="NAME=samples/s,… for `accuracy` (from `speed` on the target CPU)")
    p.add_argument("--budgets", default="30,180")
    p.add_argument("--overhead", type=float, default=7.0, help="seconds of a budget not spent training")
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--lr", type=float, default=0.2)
    a = p.parse_args()
    names = a.names.split(",")
    if a.what == "speed":
        speed(names, a.batch, a.rounds)
    else:
        rates = {k: float(v) for k, v in (item.split("=") for item in a.rates.split(","))}
        accuracy(names, rates, [float(b) for b in a.budgets.split(",")], a.overhead, a.seeds, a.batch, a.lr)


if __name__ == "__main__":
    os.environ.setdefault("CNNLAB_PRECISION_CACHE", "off")
    main()
