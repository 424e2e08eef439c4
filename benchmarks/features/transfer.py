"""Transfer learning on Fashion-MNIST split by class ("how transferable are features", Yosinski et al. 2014).

Network A is trained on classes 0–4 (T-shirt/top, Trouser, Pullover, Dress, Coat). Task B is classes 5–9
(Sandal, Shirt, Sneaker, Bag, Ankle boot) with only 10, 50 or 500 training images per class, drawn per seed from
B's 30,000 training images, and tested on all 5,000 of B's test images. Four strategies per size and seed:

- scratch:   the model from its own initialization, all of it trained on B;
- head:      A's weights (`load_pretrained`, a new 5-class classifier), everything but the classifier frozen
             (`FreezeSchedule("features", epochs)`: frozen BatchNorm statistics included);
- fine-tune: A's weights, the classifier alone for 1 epoch, then the whole network with the backbone at 0.1 × LR
             (`FreezeSchedule("features", 1)` and `param_groups(..., backbone_lr_mult=0.1)`: `cnnlab train`'s default);
- probe:     logistic regression (scikit-learn) on A's penultimate-layer codes (`cnnlab.features`).

The same Adam (batch 32, constant LR, bf16 autocast where the CPU does it) and number of epochs per size for scratch
/ head / fine-tune. The scratch network trains at LR 1e-3 (cnnlab's default). The new classifier of head / fine-tune trains at
`head_lr` (MODELS below) and the fine-tuned backbone at 0.1 × that (`--backbone-lr-mult 0.1`, the default):
LeNet-5's 84-wide head needs 1e-2 (at 1e-3 it was still at 26 % training accuracy after 80 steps), ResNet-18's
512-wide head is unstable at 1e-2 (fine-tuning then ended at 62 % at 50 images per class), so it gets 1e-3.
B's images are normalized with the B training subset's mean/std (as `cnnlab train`
does), the probe's codes with A's (as `cnnlab features` does).

Run (from the repository root; each command appends to benchmarks/results/transfer_results.json, a cached A is
reused):

    PYTHONPATH=src python -m benchmarks.features.transfer --model lenet5 --seeds 0 1 2
    PYTHONPATH=src python -m benchmarks.features.transfer --model resnet18 --seeds 0 1 2
    PYTHONPATH=src python -m benchmarks.features.transfer --report   # table (Markdown) and docs/images/transfer.png

The sizes of A's training and of the B epochs per model are in MODELS below (resnet18 gets fewer: 2 shared CPU
cores); the report states what was run. The published table (BENCHMARKS.md, "Transfer learning"; docs/transfer.md
quotes it) came from the lenet5 command above and, for ResNet-18 (one B run took 0.5–9 minutes on the shared CPU),
from `--model resnet18 --seeds S --sizes 10 50` for S = 0, 1, 2 (in pieces, two at a time, each in its own copy of
the repository, the JSON rows merged: concurrent runs must not share benchmarks/results/transfer_results.json).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from benchmarks import RESULTS_DIR, ROOT
from cnnlab.data import ImageSet, InMemoryLoader, Normalize, channel_stats, load_dataset
from cnnlab.evaluate import evaluate
from cnnlab.features import linear_probe, split_codes
from cnnlab.infer import TorchClassifier
from cnnlab.io import RunMeta, load_model, save_model
from cnnlab.models import create_model
from cnnlab.runtime import use_threads
from cnnlab.train import Trainer, build_optimizer
from cnnlab.train.callbacks import FreezeSchedule
from cnnlab.train.transfer import load_pretrained, param_groups

RESULTS = RESULTS_DIR / "transfer_results.json"
PLOT = ROOT / "docs" / "images" / "transfer.png"
SIZES = (10, 50, 500)
STRATEGIES = ("scratch", "head", "fine-tune", "probe")
LR, BATCH = 1e-3, 32
MODELS = {
    # a_images: A's training images (None: all 30,000 of classes 0–4); epochs: B epochs per images-per-class
    "lenet5": {"kwargs": {}, "a_images": None, "a_epochs": 5, "epochs": {10: 40, 50: 20, 500: 8}, "head_lr": 1e-2},
    "resnet18": {
        "kwargs": {"small_input": True},
        "a_images": 6000,
        "a_epochs": 1,
        "epochs": {10: 20, 50: 10, 500: 3},
        "head_lr": 1e-3,
    },
}


def class_split(data: ImageSet, lo: int, names: list[str]) -> ImageSet:
    """The images of classes lo … lo+4, relabelled 0–4."""
    keep = (data.labels >= lo) & (data.labels < lo + 5)
    return ImageSet(data.images[keep], data.labels[keep] - lo, names[lo : lo + 5])


def per_class_index(labels: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """Sorted indices of `n` images of each class, drawn with `generator`."""
    index = []
    for k in range(int(labels.max()) + 1):
        idx = (labels == k).nonzero().flatten()
        index.append(idx[torch.randperm(len(idx), generator=generator)[:n]])
    return torch.cat(index).sort().values


def per_class(data: ImageSet, n: int, seed: int) -> ImageSet:
    """`n` images of each class, drawn with `seed` (for one seed the smaller sets are part of the larger)."""
    return data.subset(per_class_index(data.labels, n, torch.Generator().manual_seed(1000 + seed)))


def meta_for(model, data: ImageSet, precision: str, dataset: str) -> RunMeta:
    mean, std = channel_stats(data.images)
    record = {"classes": data.classes, "input_size": list(data.image_shape), "mean": mean, "std": std}
    return RunMeta.for_model(model, **record, precision=precision, dataset=dataset)


def fit(model, params, data: ImageSet, epochs: int, seed: int, callbacks=(), batch: int = BATCH, lr=LR) -> dict:
    trainer = Trainer(
        model, build_optimizer("adam", params, lr), device="cpu", precision="auto", callbacks=list(callbacks)
    )
    meta = meta_for(model, data, trainer.precision, "")
    loader = InMemoryLoader(data, batch, shuffle=True, transform=Normalize(meta.mean, meta.std), seed=seed + 1)
    t = time.perf_counter()
    trainer.fit(loader, epochs)
    return {"meta": meta, "train_s": time.perf_counter() - t}


def train_a(name: str, cfg: dict, a_train: ImageSet, a_test: ImageSet, log) -> Path:
    path = ROOT / "runs" / "transfer" / f"A-{name}.safetensors"
    if path.exists():
        log(f"A: reusing {path}")
        return path
    data = a_train if cfg["a_images"] is None else per_class(a_train, cfg["a_images"] // 5, seed=99)
    torch.manual_seed(0)
    model = create_model(name, num_classes=5, in_chans=1, img_size=28, **cfg["kwargs"])
    res = fit(model, model, data, cfg["a_epochs"], seed=0, batch=128)
    meta = res["meta"].replace(dataset="fashion-mnist classes 0-4")
    acc = evaluate(TorchClassifier(model, meta, "cpu"), a_test)["accuracy"]
    metrics = {"test_accuracy": acc, "train_images": len(data), "epochs": cfg["a_epochs"]}
    save_model(path, model, meta.replace(metrics=metrics))
    log(
        f"A: {name} on {len(data):,} images of classes 0–4, {cfg['a_epochs']} epoch(s), {res['train_s']:.0f} s: "
        f"test accuracy {acc:.4f} on A's 5,000 test images → {path}"
    )
    return path


def run_b(strategy: str, name: str, cfg: dict, a_path: Path, data: ImageSet, test: ImageSet, n: int, seed: int):
    torch.manual_seed(seed)
    model = create_model(name, num_classes=5, in_chans=1, img_size=28, **cfg["kwargs"])
    epochs = cfg["epochs"][n]
    params, callbacks, lr = model, [], LR
    if strategy != "scratch":
        load_pretrained(model, a_path)  # A's classes are not B's: a new classifier
        lr = cfg["head_lr"]
        params = param_groups(model, lr, backbone_lr_mult=0.1)
        callbacks = [FreezeSchedule("features", epochs if strategy == "head" else 1)]
    res = fit(model, params, data, epochs, seed, callbacks, lr=lr)
    acc = evaluate(TorchClassifier(model, res["meta"], "cpu"), test)["accuracy"]
    return acc, res["train_s"]


def load_results() -> list[dict]:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else []


def save_result(row: dict) -> None:
    rows = [
        r
        for r in load_results()
        if (r["model"], r["strategy"], r["n"], r["seed"]) != (row["model"], row["strategy"], row["n"], row["seed"])
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps([*rows, row], indent=1) + "\n")


def experiment(name: str, seeds: list[int], sizes: list[int], strategies: list[str], log=print) -> None:
    cfg = MODELS[name]
    splits = load_dataset("fashion-mnist", val_split=0)
    a_train, a_test = class_split(splits.train, 0, splits.classes), class_split(splits.test, 0, splits.classes)
    b_pool, b_test = class_split(splits.train, 5, splits.classes), class_split(splits.test, 5, splits.classes)
    a_path = train_a(name, cfg, a_train, a_test, log)
    a_model, a_meta = load_model(a_path)
    test_codes = None
    for seed in seeds:
        for n in sizes:
            data = per_class(b_pool, n, seed)
            for strategy in strategies:
                t = time.perf_counter()
                if strategy == "probe":
                    if test_codes is None:
                        test_codes = split_codes(a_model, a_meta, b_test)
                    train_codes = split_codes(a_model, a_meta, data)
                    codes = {
                        "train_codes": train_codes[0],
                        "train_labels": train_codes[1],
                        "test_codes": test_codes[0],
                        "test_labels": test_codes[1],
                    }
                    acc, train_s = linear_probe(codes, seed=seed)["test_accuracy"], 0.0
                else:
                    acc, train_s = run_b(strategy, name, cfg, a_path, data, b_test, n, seed)
                row = {
                    "model": name,
                    "strategy": strategy,
                    "n": n,
                    "seed": seed,
                    "accuracy": acc,
                    "epochs": 0 if strategy == "probe" else cfg["epochs"][n],
                    "train_s": round(train_s, 1),
                    "wall_s": round(time.perf_counter() - t, 1),
                    "a": a_meta.metrics,
                }
                save_result(row)
                log(f"{name} {n:>3}/class seed {seed} {strategy:<9} accuracy {acc:.4f} ({row['wall_s']:.0f} s)")


def report(log=print) -> str:
    from matplotlib.figure import Figure

    rows = load_results()
    models = [m for m in MODELS if any(r["model"] == m for r in rows)]
    lines = [
        "| model | images / class | scratch | head only | fine-tune | linear probe | seeds | B epochs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    fig = Figure(figsize=(5 * len(models), 4), layout="constrained")
    axes = fig.subplots(1, len(models), squeeze=False)[0]
    for ax, m in zip(axes, models, strict=True):
        for n in SIZES:
            cells, seeds = [], set()
            for s in STRATEGIES:
                accs = [100 * r["accuracy"] for r in rows if (r["model"], r["strategy"], r["n"]) == (m, s, n)]
                seeds |= {r["seed"] for r in rows if (r["model"], r["strategy"], r["n"]) == (m, s, n)}
                sd = f" ± {statistics.stdev(accs):.1f}" if len(accs) > 1 else ""  # one seed: no spread to show
                cells.append(f"{statistics.fmean(accs):.1f}{sd}" if accs else "—")
            if any(c != "—" for c in cells):
                epochs = MODELS[m]["epochs"][n]
                lines.append(f"| {m} | {n} | {' | '.join(cells)} | {', '.join(map(str, sorted(seeds)))} | {epochs} |")
        for s, style in zip(STRATEGIES, ("o--", "s-", "D-", "^:"), strict=True):
            xs, ms, sds = [], [], []
            for n in SIZES:
                accs = [100 * r["accuracy"] for r in rows if (r["model"], r["strategy"], r["n"]) == (m, s, n)]
                if accs:
                    xs.append(n)
                    ms.append(statistics.fmean(accs))
                    sds.append(statistics.stdev(accs) if len(accs) > 1 else 0.0)
            if xs:
                ax.errorbar(xs, ms, yerr=sds, fmt=style, capsize=3, label=s)
        a = next(r["a"] for r in rows if r["model"] == m)
        ax.set_xscale("log")
        ax.set_xticks(SIZES, [str(n) for n in SIZES])
        ax.set_xlabel("training images per class (task B)")
        ax.set_ylabel("test accuracy on B's 5,000 images (%)")
        ax.set_title(f"{m}: A = classes 0–4 ({a['train_images']:,} images, {a['epochs']} ep.)", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PLOT, dpi=110)
    table = "\n".join(lines)
    log(table)
    log(f"plot: {PLOT}")
    return table


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=list(MODELS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), choices=SIZES)
    p.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    p.add_argument("--report", action="store_true", help="write the table and the plot from the saved results")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: on a shared 2-core CPU, 2 threads ran 20× slower than 1)",
    )
    args = p.parse_args()
    if args.model:
        with use_threads(args.threads):  # every Trainer inside takes them (its own choice would measure)
            experiment(args.model, args.seeds, args.sizes, args.strategies, log=lambda s: print(s, flush=True))
    if args.report:
        report()


if __name__ == "__main__":
    main()
