"""Fine-tuning defaults: `cnnlab train --init-from` with its defaults against training from scratch, and candidates.

Fashion-MNIST split by class into two task pairs: A = classes 0–4 → B = classes 5–9, and the reverse. Network A is
trained on A's training images (all 30,000 for LeNet-5; 6,000 for ResNet-18, as in transfer.py); task B gets 10, 50 or 500 images per class (drawn per seed) and is
tested on all 5,000 of its test images. Every strategy trains B with Adam at `cnnlab train`'s default LR (1e-3),
batch 32, the same epochs per size — only the transfer settings differ, exactly as the CLI applies them
(`load_pretrained` with a new classifier, `param_groups(backbone_lr_mult=…)`, `FreezeSchedule("features", k)`):

- scratch:        no transfer;
- freeze1-x0.1:   the classifier alone for 1 epoch, then all at 0.1 × LR in the backbone (the defaults before);
- freeze0-x1:     A's weights as the start, everything at the LR from the first step (a plain warm start);
- freeze1-x1:     the classifier alone for 1 epoch, then everything at the LR;
- freeze1-x0.3:   the classifier alone for 1 epoch, then the backbone at 0.3 × LR.

Run (from the repository root; rows append to benchmarks/results/finetune_defaults.json; A is cached in runs/):

    PYTHONPATH=src python -m benchmarks.features.finetune_defaults --model lenet5 --seeds 0 1 2
    PYTHONPATH=src python -m benchmarks.features.finetune_defaults --report
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from benchmarks import RESULTS_DIR, ROOT
from benchmarks.features.transfer import MODELS, class_split, fit, per_class
from cnnlab.data import ImageSet, load_dataset
from cnnlab.evaluate import evaluate
from cnnlab.infer import TorchClassifier
from cnnlab.io import save_model
from cnnlab.models import create_model
from cnnlab.runtime import cpu_isa, hardware_info
from cnnlab.train.callbacks import FreezeSchedule
from cnnlab.train.transfer import load_pretrained, param_groups

RESULTS = RESULTS_DIR / "finetune_defaults.json"
SIZES = (10, 50, 500)
PAIRS = {"0-4 → 5-9": (0, 5), "5-9 → 0-4": (5, 0)}
STRATEGIES = {  # name → (freeze epochs, backbone LR multiplier); None: from scratch
    "scratch": None,
    "freeze1-x0.1": (1, 0.1),
    "freeze0-x1": (0, 1.0),
    "freeze1-x1": (1, 1.0),
    "freeze1-x0.3": (1, 0.3),
}
LR = 1e-3  # cnnlab train's default


def _key(row: dict) -> tuple:
    return row["model"], row["pair"], row["n"], row["seed"], row["strategy"]


def train_a(name: str, pair: str, a_train: ImageSet, a_test: ImageSet, log) -> Path:
    lo = PAIRS[pair][0]
    path = ROOT / "runs" / "transfer" / f"A-{name}-classes{lo}-{lo + 4}.safetensors"
    if path.exists():
        return path
    cfg = MODELS[name]
    if cfg["a_images"] is not None:  # as the transfer benchmark: ResNet-18's A sees 6,000 images
        a_train = per_class(a_train, cfg["a_images"] // 5, seed=99)
    torch.manual_seed(0)
    model = create_model(name, num_classes=5, in_chans=1, img_size=28, **cfg["kwargs"])
    res = fit(model, model, a_train, cfg["a_epochs"], seed=0, batch=128)
    acc = evaluate(TorchClassifier(model, res["meta"], "cpu"), a_test)["accuracy"]
    metrics = {"test_accuracy": acc, "train_images": len(a_train), "epochs": cfg["a_epochs"]}
    save_model(path, model, res["meta"].replace(metrics=metrics, dataset=f"fashion-mnist classes {lo}-{lo + 4}"))
    log(f"A ({pair}): {name}, {cfg['a_epochs']} epochs, test accuracy {acc:.4f} → {path}")
    return path


def run_b(strategy: str, name: str, a_path: Path, data: ImageSet, test: ImageSet, epochs: int, seed: int) -> float:
    torch.manual_seed(seed)
    model = create_model(name, num_classes=5, in_chans=1, img_size=28, **MODELS[name]["kwargs"])
    params, callbacks = model, []
    setting = STRATEGIES[strategy]
    if setting is not None:
        freeze, mult = setting
        load_pretrained(model, a_path)
        params = param_groups(model, LR, backbone_lr_mult=mult)
        callbacks = [FreezeSchedule("features", freeze)] if freeze else []
    res = fit(model, params, data, epochs, seed, callbacks, lr=LR)
    return evaluate(TorchClassifier(model, res["meta"], "cpu"), test)["accuracy"]


def experiment(name: str, seeds: list[int], sizes: list[int], log=print) -> None:
    splits = load_dataset("fashion-mnist", val_split=0)
    rows = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    machine = {"cpu": hardware_info(torch.device("cpu"))["cpu"], "isa": cpu_isa(), "threads": torch.get_num_threads()}
    for pair, (a_lo, b_lo) in PAIRS.items():
        a_train, a_test = (
            class_split(splits.train, a_lo, splits.classes),
            class_split(splits.test, a_lo, splits.classes),
        )
        b_pool, b_test = class_split(splits.train, b_lo, splits.classes), class_split(splits.test, b_lo, splits.classes)
        a_path = train_a(name, pair, a_train, a_test, log)
        for seed in seeds:
            for n in sizes:
                data, epochs = per_class(b_pool, n, seed), MODELS[name]["epochs"][n]
                for strategy in STRATEGIES:
                    t = time.perf_counter()
                    acc = run_b(strategy, name, a_path, data, b_test, epochs, seed)
                    row = {"model": name, "pair": pair, "n": n, "seed": seed, "strategy": strategy, "accuracy": acc}
                    row |= {"epochs": epochs, "wall_s": round(time.perf_counter() - t, 1), **machine}
                    row["date"], row["python"] = time.strftime("%Y-%m-%d"), platform.python_version()
                    rows = [r for r in rows if _key(r) != _key(row)] + [row]
                    RESULTS.parent.mkdir(parents=True, exist_ok=True)
                    RESULTS.write_text(json.dumps(rows, indent=1) + "\n")
                    log(f"{name} {pair} {n:>3}/class seed {seed} {strategy:<13} {acc:.4f} ({row['wall_s']:.0f} s)")


def report(log=print) -> str:
    rows = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    head = ["model", "pair", "images / class", *STRATEGIES, "seeds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    keys = sorted({(r["model"], r["pair"], r["n"]) for r in rows}, key=lambda k: (k[0], k[1], k[2]))
    for model, pair, n in keys:
        cells, seeds = [], set()
        for s in STRATEGIES:
            accs = [100 * r["accuracy"] for r in rows if _key(r)[:3] == (model, pair, n) and r["strategy"] == s]
            seeds |= {r["seed"] for r in rows if (r["model"], r["pair"], r["n"]) == (model, pair, n)}
            sd = f" ± {statistics.stdev(accs):.1f}" if len(accs) > 1 else ""
            cells.append(f"{statistics.fmean(accs):.1f}{sd}" if accs else "—")
        lines.append(f"| {model} | {pair} | {n} | {' | '.join(cells)} | {', '.join(map(str, sorted(seeds)))} |")
    if rows:
        lines.append("")
        lines.append(
            f"CPU: {rows[-1]['cpu']}, ISA {rows[-1]['isa']}, {rows[-1]['threads']} thread(s), {rows[-1]['date']}"
        )
    table = "\n".join(lines)
    log(table)
    return table


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=list(MODELS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), choices=SIZES)
    p.add_argument("--report", action="store_true")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: a shared 2-core CPU)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.model:
        experiment(args.model, args.seeds, args.sizes, log=lambda s: print(s, flush=True))
    if args.report:
        report()


if __name__ == "__main__":
    main()
