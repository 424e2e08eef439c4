"""Which time-to-accuracy tricks pay for the `fast` recipe at a fixed number of steps (the steps a budget allows).

    python -m benchmarks.features.fast_tricks --steps 197 --variants base,translate,ema --seeds 0 1 --out R.jsonl
    python -m benchmarks.features.fast_tricks --report R.jsonl     # the Markdown table of every result in R.jsonl
    THREADS=1 python -m benchmarks.features.fast_tricks --speed NET1,NET2,…   # training samples/s, interleaved
    PRECISION=bf16 THREADS=2 python -m benchmarks.features.fast_tricks --speed …  # the same under bf16 autocast
    python -m benchmarks.features.fast_tricks --steps 197 --seeds 0 1 --logits DIR   # keep each run's test outputs
    python -m benchmarks.features.fast_tricks --ensemble DIR/base-0.pt DIR/base-1.pt  # their averaged accuracy

Every variant trains for exactly `--steps` SGD steps of 256 images (the same number of images at another batch)
with the recipe's one-cycle schedule laid out over those steps — the workload a `--time-budget` run plans — and
reports test accuracy on the official 10,000 test images. The accuracy does not depend on the machine's speed, so
variants can be compared on a shared machine at one thread; their speeds are measured apart (`--speed`), and a net
k× as fast as another gets k× its steps. BASE is where the exploration of 2026-12-06 started (the recipe's previous
fp32 variant); a named variant changes one thing, `--set` any of BASE's keys (and `ema_start`, a fraction of the
run) for every variant of the call. Results: BENCHMARKS.md, "The fast recipe's fp32 variant, chosen again".
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time

import torch
import torch.nn.functional as F

from benchmarks._common import StopAt
from cnnlab.data import Compose, InMemoryLoader, Normalize, channel_stats, load_dataset
from cnnlab.data.augment import Augment
from cnnlab.files import atomic_write
from cnnlab.infer import predict_logits
from cnnlab.models import create_model
from cnnlab.runtime import measure, reuse_freed_memory
from cnnlab.train import Trainer, build_optimizer
from cnnlab.train.callbacks import Callback, LRScheduler
from cnnlab.train.losses import ClassificationLoss

NET = "CL24k3-BN-MP4-CL48k3-BN-MP4-CL96k3-BN-MP4-GAP-FC10"
BASE = dict(
    net=NET, augment="flip", lr=0.2, ls=0.1, wd=5e-4, batch=256, ema=0.0, whiten=False, tta="flip", pct=0.3, mom=0.9
)
VARIANTS = {
    "base": {},
    "translate": dict(augment="flip,translate=2"),
    "translate1": dict(augment="flip,translate=1"),
    "ema": dict(ema=0.99),
    "ema999": dict(ema=0.999),  # at batch 128 over ~1,000 steps (with `ema_start`: over the run's end only)
    "ttashift": dict(tta="flip,shift"),
    "whiten": dict(whiten=True),
    "lr4": dict(lr=0.4),
    "lr1": dict(lr=0.1),
    "ls2": dict(ls=0.2),
    "b128": dict(batch=128, lr=0.1),
    "wide": dict(net="CL32k3-BN-MP4-CL64k3-BN-MP4-CL128k3-BN-MP4-GAP-FC10"),
    "narrow": dict(net="CL16k3-BN-MP4-CL32k3-BN-MP4-CL64k3-BN-MP4-GAP-FC10"),
}


class Ema(Callback):
    """Exponential moving average of the weights and BN buffers, from `start` of the run on."""

    def __init__(self, decay: float, steps: int, start: float = 0.0) -> None:
        self.decay, self.steps, self.start = decay, steps, start
        self.avg = None

    def on_batch_end(self, batch: int, logs: dict) -> None:
        step = self.trainer.step
        if step < self.start * self.steps:
            return
        state = self.trainer.model.state_dict()
        if self.avg is None:
            self.avg = {k: v.detach().clone() for k, v in state.items()}
            return
        for k, v in state.items():
            if v.dtype.is_floating_point:
                self.avg[k].lerp_(v.detach(), 1 - self.decay)
            else:
                self.avg[k].copy_(v)


def whiten_first_conv(model: torch.nn.Module, images: torch.Tensor, mean, std, eps: float = 5e-4) -> None:
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    k = conv.kernel_size[0]
    x = (images[:10000].float() - torch.as_tensor(mean).view(1, -1, 1, 1)) / torch.as_tensor(std).view(1, -1, 1, 1)
    patches = F.unfold(x, k).transpose(1, 2).reshape(-1, conv.in_channels * k * k)
    cov = torch.cov(patches.T)
    evals, evecs = torch.linalg.eigh(cov)
    filters = (evecs.T / (evals + eps).sqrt().unsqueeze(1)).flip(0)  # largest first
    filters = torch.cat([filters, -filters])[: conv.out_channels]
    with torch.no_grad():
        conv.weight[: len(filters)] = filters.view(len(filters), conv.in_channels, k, k)


def logits_tta(model, images, mean, std, mode: str) -> torch.Tensor:
    out = predict_logits(model, images, mean, std, "cpu", "fp32", tta="flip" in mode)
    if "shift" in mode:
        for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
            shifted = torch.roll(images, (dy, dx), (2, 3))
            out = out + 0.5 * predict_logits(model, shifted, mean, std, "cpu", "fp32", tta="flip" in mode)
    return out


def _trainer(model: torch.nn.Module | str, lr: float, ls: float, wd: float, mom: float = 0.9) -> Trainer:
    """The recipe's optimizer and loss on `model` (or a net's notation), at the process's thread count, in PRECISION
    (fp32 unless the environment variable says bf16)."""
    if isinstance(model, str):
        model = create_model(model, num_classes=10, in_chans=1)
    opt = build_optimizer("sgd", model, lr, momentum=mom, nesterov=True, weight_decay=wd)
    loss = ClassificationLoss(ls)
    precision = os.environ.get("PRECISION", "fp32")
    return Trainer(model, opt, loss, device="cpu", precision=precision, threads=torch.get_num_threads())


def run(v: dict, steps: int, seed: int, splits, mean, std, logits_to: str | None = None) -> float:
    torch.manual_seed(seed)
    model = create_model(v["net"], num_classes=10, in_chans=1)
    if v["whiten"]:
        whiten_first_conv(model, splits.train.images, mean, std)
    t = _trainer(model, v["lr"], v["ls"], v["wd"], v["mom"])
    t.callbacks.add(LRScheduler("onecycle", pct_start=v["pct"]))
    t.callbacks.add(StopAt(steps))
    ema = Ema(v["ema"], steps, v.get("ema_start", 0.0)) if v["ema"] else None
    if ema:
        t.callbacks.add(ema)
    aug = Augment(v["augment"], 10, seed=seed + 2)
    t.track("augment", aug)
    loader = InMemoryLoader(
        splits.train, v["batch"], shuffle=True, transform=Compose([aug, Normalize(mean, std)]), seed=seed + 1
    )
    t.fit(loader, 10_000)
    model = t.model
    if ema:
        model = copy.deepcopy(model)
        model.load_state_dict(ema.avg)
    logits = logits_tta(model, splits.test.images, mean, std, v["tta"])
    if logits_to:
        atomic_write(logits_to, lambda tmp: torch.save(logits, tmp))
    return 100 * (logits.argmax(1) == splits.test.labels).float().mean().item()


def speed(nets: list[str], batch: int) -> None:
    """Training samples/s of each net (SGD step, PRECISION, channels_last), timed by `runtime.measure`: warm-up steps,
    blocks of steps, the nets interleaved so that a change in the machine's load meets all of them, the fastest
    block of each, with malloc set as `cnnlab train` sets it (`runtime.reuse_freed_memory`). Read the ratios."""
    reuse_freed_memory()
    torch.manual_seed(0)
    x = torch.randn(batch, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))
    trainers = {net: _trainer(net, 0.01, 0.1, 5e-4) for net in nets}
    for t in trainers.values():
        t.model.train()
    times = measure({net: (lambda t=t: t.train_step(x, y)) for net, t in trainers.items()}, rounds=6, block_s=0.4)
    print(f"{torch.get_num_threads()} thread(s), batch {batch}, {os.environ.get('PRECISION', 'fp32')}")
    for net in nets:
        print(f"{batch / times[net]:8,.0f} samples/s  {times[nets[0]] / times[net]:.2f}× the first  {net}")


def report(path: str) -> None:
    """One row per result line: what differs from BASE, the images trained on, test accuracy per seed."""
    print(
        "| net | batch, LR | other settings (vs the recipe) | images seen (epochs of 55,000) | test accuracy | seeds |"
    )
    print("|---|---|---|---|---|---|")
    for line in open(path):
        r = json.loads(line)
        other = {k: r[k] for k in BASE if k not in ("net", "batch", "lr") and r.get(k, BASE[k]) != BASE[k]}
        other.update({k: r[k] for k in ("ema_start",) if k in r})
        images = r["steps"] * r["batch"]
        accs = r["accs"]
        spread = f" ± {statistics.stdev(accs):.2f}" if len(accs) > 1 else ""
        print(
            f"| `{r['net']}` | {r['batch']}, {r['lr']:g} | {', '.join(f'{k} {v}' for k, v in other.items()) or '—'} "
            f"| {images:,} ({images / 55000:.2f}) | {statistics.fmean(accs):.2f}{spread} % | "
            f"{', '.join(map(str, r['seeds']))} |"
        )


def ensemble(paths: list[str], val_split: int) -> None:
    """Test accuracy of each saved logits file alone, and of the mean of their softmax outputs, growing one by one."""
    labels = load_dataset("fashion-mnist", val_split=val_split).test.labels
    probs = []
    for path in paths:
        logits = torch.load(path)
        probs.append(logits.float().softmax(1))
        alone = 100 * (logits.argmax(1) == labels).float().mean().item()
        together = 100 * (torch.stack(probs).mean(0).argmax(1) == labels).float().mean().item()
        print(f"{path}: alone {alone:.2f} %, the first {len(probs)} together {together:.2f} %")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, help="optimizer steps of 256 images (scaled for other batches)")
    p.add_argument("--report", default=None, help="print the Markdown table of a results file and stop")
    p.add_argument("--speed", default=None, help="comma list of nets: training samples/s of each, then stop")
    p.add_argument("--batch", type=int, default=256, help="--speed: the batch")
    p.add_argument("--variants", default="base")
    p.add_argument("--set", default="", help="extra settings for every variant as JSON, e.g. '{\"ema\": 0.99}'")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--val-split", type=int, default=5000)
    p.add_argument("--out", default=None, help="append JSON lines of the results here")
    p.add_argument("--logits", default=None, help="save each run's test logits as DIR/VARIANT-SEED.pt (see --ensemble)")
    p.add_argument("--ensemble", nargs="+", default=None, help="test accuracy of the mean softmax of saved logits")
    a = p.parse_args()
    if a.report:
        return report(a.report)
    if a.speed:
        return speed(a.speed.split(","), a.batch)
    if a.ensemble:
        return ensemble(a.ensemble, a.val_split)
    if a.steps is None:
        p.error("--steps is needed (or --report FILE)")
    splits = load_dataset("fashion-mnist", val_split=a.val_split)
    mean, std = channel_stats(splits.train.images)
    extra = json.loads(a.set) if a.set else {}
    for name in a.variants.split(","):
        v = {**BASE, **VARIANTS.get(name, {}), **extra}
        steps = a.steps * 256 // v["batch"]
        accs, start = [], time.perf_counter()
        for seed in a.seeds:
            to = os.path.join(a.logits, f"{name}-{seed}.pt") if a.logits else None
            accs.append(run(v, steps, seed, splits, mean, std, to))
        spread = statistics.stdev(accs) if len(accs) > 1 else 0.0
        line = (
            f"{name} {extra or ''}: {steps} steps × {v['batch']} → {statistics.fmean(accs):.2f} ± {spread:.2f} % {accs}"
        )
        print(line + f"  ({time.perf_counter() - start:.0f} s)", flush=True)
        if a.out:
            with open(a.out, "a") as f:
                f.write(json.dumps(dict(name=name, steps=steps, seeds=a.seeds, accs=accs, **v)) + "\n")


if __name__ == "__main__":
    torch.set_num_threads(int(os.environ.get("THREADS", "1")))
    os.environ.setdefault("CNNLAB_PRECISION_CACHE", "off")
    main()
