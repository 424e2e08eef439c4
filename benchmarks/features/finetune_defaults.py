"""Fine-tuning defaults: `cnnlab train --init-from` with its defaults against training from scratch, and candidates.

Four task pairs. Fashion-MNIST split by class: A = classes 0–4 → B = classes 5–9, and the reverse (A trained on all
30,000 of A's training images for LeNet-5, 6,000 for ResNet-18, as in transfer.py; B tested on all 5,000 of its test
images). Digits ↔ fashion, across domains: scikit-learn's handwritten digits (UCI optdigits, shipped inside the
package: 1,797 scans of 8×8 pixels, here enlarged and centred like MNIST's digits, 50 per class held out for testing)
→ all ten Fashion-MNIST classes (tested on its 10,000 test images), and Fashion-MNIST's ten classes → the digits. A
sees as many images as in the class split (a small source is repeated over more epochs); B gets 10, 50 or 500 images
per class, drawn per seed (sizes a pool cannot fill are skipped: the digits have 124 or more per class). Every
strategy trains B with Adam at `cnnlab train`'s default LR (1e-3), batch 32, the same epochs per size — only the
transfer settings differ, exactly as the CLI applies them (`load_pretrained` with a new classifier and, for newfc,
new fully connected layers below it; `param_groups(backbone_lr_mult=…)`; `FreezeSchedule("features", k)`, the new
layers training from the start):

- scratch:           no transfer;
- freeze1-x0.1:      the classifier alone for 1 epoch, then all at 0.1 × LR in the backbone (the defaults until
                     2026-12-06);
- freeze0-x1:        A's weights as the start, everything at the LR from the first step (a plain warm start);
- freeze1-x1:        the classifier alone for 1 epoch, then everything at the LR (the defaults until 2026-12-07;
                     now `--keep-fc`);
- freeze1-x0.3:      the classifier alone for 1 epoch, then the backbone at 0.3 × LR;
- newfc-freeze1-x1:  A's convolutional body only, the fully connected layers new (as fastai's cnn_learner), the
                     body frozen for 1 epoch, then everything at the LR (the defaults);
- newfc-freeze0-x1:  the same without the frozen epoch;
- checked:           the defaults: newfc-freeze1-x1 where the fit check (`cnnlab.train.fit_check`, as `cnnlab train
                     --init-from` runs it on B's training images) finds that A's body separates B's classes at
                     least as well as the fresh network's, less 1 point; else from scratch. The row records the check.

Run (from the repository root; rows append to benchmarks/results/finetune_defaults.json; A is cached in runs/):

    PYTHONPATH=src python -m benchmarks.features.finetune_defaults --model lenet5 --seeds 0 1 2
    PYTHONPATH=src python -m benchmarks.features.finetune_defaults --model lenet5 --pairs digits:fashion fashion:digits
    PYTHONPATH=src python -m benchmarks.features.finetune_defaults --report
    PYTHONPATH=src python -m benchmarks.features.finetune_defaults --check-cost --threads 2   # the check's seconds
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks import RESULTS_DIR, ROOT
from benchmarks.features.transfer import MODELS, class_split, fit, per_class, per_class_index
from cnnlab.data import ImageSet, Normalize, channel_stats, load_dataset
from cnnlab.evaluate import evaluate
from cnnlab.infer import TorchClassifier
from cnnlab.io import save_model
from cnnlab.models import create_model
from cnnlab.runtime import cpu_isa, hardware_info, resolve_precision, use_threads
from cnnlab.train.callbacks import FreezeSchedule
from cnnlab.train.fit_check import balanced_sample, check_fit
from cnnlab.train.transfer import load_pretrained, param_groups

RESULTS = RESULTS_DIR / "finetune_defaults.json"
SIZES = (10, 50, 500)
SPLITS = {"0-4 → 5-9": (0, 5), "5-9 → 0-4": (5, 0)}  # Fashion-MNIST by class: (A's first class, B's first class)
PAIRS = (*SPLITS, "digits → fashion", "fashion → digits")
DIGITS_TEST = 50  # digits held out per class for testing
STRATEGIES = {  # name → (freeze epochs, backbone LR multiplier, new fully connected layers); None: from scratch
    "scratch": None,
    "freeze1-x0.1": (1, 0.1, False),  # `--init-from`'s defaults until 2026-12-06
    "freeze0-x1": (0, 1.0, False),
    "freeze1-x1": (1, 1.0, False),  # the defaults until 2026-12-07 (now `--keep-fc`)
    "freeze1-x0.3": (1, 0.3, False),
    "newfc-freeze1-x1": (1, 1.0, True),  # the defaults until the fit check (now `--init-always`)
    "newfc-freeze0-x1": (0, 1.0, True),
    "checked": (1, 1.0, True),  # the defaults: newfc-freeze1-x1 where the fit check finds the source fits, else scratch
}
LR = 1e-3  # cnnlab train's default


def _key(row: dict) -> tuple:
    return row["model"], row["pair"], row["n"], row["seed"], row["strategy"]


def slug(pair: str) -> str:
    """The pair's name on the command line: `digits:fashion` for `digits → fashion`."""
    return pair.replace(" → ", ":")


def sklearn_digits() -> tuple[ImageSet, ImageSet]:
    """scikit-learn's handwritten digits as MNIST-like 28×28 uint8 images (light digits on black, as MNIST's and
    Fashion-MNIST's): 0–16 scaled to 0–255, enlarged to 20×20 (bilinear), 4 blank pixels each side. Returns
    (training pool, test set), the test set `DIGITS_TEST` images per class drawn once with a fixed seed."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.from_numpy(digits.images).float().mul(255 / 16).unsqueeze(1)
    x = F.pad(F.interpolate(x, size=(20, 20), mode="bilinear", align_corners=False), (4, 4, 4, 4))
    data = ImageSet(x.round().clamp(0, 255).to(torch.uint8), torch.from_numpy(digits.target).long(), list("0123456789"))
    is_test = torch.zeros(len(data), dtype=torch.bool)
    is_test[per_class_index(data.labels, DIGITS_TEST, torch.Generator().manual_seed(7))] = True
    return data.subset(~is_test), data.subset(is_test)


def tasks(pair: str, fashion) -> tuple[ImageSet, ImageSet, ImageSet, ImageSet]:
    """(A's training set, A's test set, B's pool, B's test set) of a pair; `fashion` are Fashion-MNIST's splits."""
    if pair in SPLITS:
        a, b = SPLITS[pair]
        return tuple(class_split(s, lo, fashion.classes) for lo in (a, b) for s in (fashion.train, fashion.test))
    digits, ten = sklearn_digits(), (fashion.train, fashion.test)
    return (*digits, *ten) if pair == "digits → fashion" else (*ten, *digits)


def train_a(name: str, pair: str, a_train: ImageSet, a_test: ImageSet, log) -> Path:
    if pair in SPLITS:
        lo = SPLITS[pair][0]
        source, dataset = f"classes{lo}-{lo + 4}", f"fashion-mnist classes {lo}-{lo + 4}"
    elif pair.startswith("digits"):
        source, dataset = "digits", "scikit-learn digits"
    else:
        source, dataset = "fashion10", "fashion-mnist"
    path = ROOT / "runs" / "transfer" / f"A-{name}-{source}.safetensors"
    if path.exists():
        return path
    cfg = MODELS[name]
    split_images = cfg["a_images"] or 30_000  # what A sees in the class split, per epoch
    if cfg["a_images"] is not None:  # as the transfer benchmark: ResNet-18's A sees 6,000 images
        a_train = per_class(a_train, min(cfg["a_images"], len(a_train)) // len(a_train.classes), seed=99)
    epochs = max(cfg["a_epochs"], math.ceil(cfg["a_epochs"] * split_images / len(a_train)))
    torch.manual_seed(0)
    model = create_model(name, num_classes=len(a_train.classes), in_chans=1, img_size=28, **cfg["kwargs"])
    res = fit(model, model, a_train, epochs, seed=0, batch=128)
    acc = evaluate(TorchClassifier(model, res["meta"], "cpu"), a_test)["accuracy"]
    metrics = {"test_accuracy": acc, "train_images": len(a_train), "epochs": epochs}
    save_model(path, model, res["meta"].replace(metrics=metrics, dataset=dataset))
    log(f"A ({pair}): {name}, {len(a_train):,} images × {epochs} epochs, test accuracy {acc:.4f} → {path}")
    return path


def run_b(
    strategy: str, name: str, a_path: Path, data: ImageSet, test: ImageSet, epochs: int, seed: int
) -> tuple[float, dict | None]:
    """B's test accuracy after training with `strategy`, and the fit check's record (None where none ran)."""
    torch.manual_seed(seed)
    model = create_model(name, num_classes=len(data.classes), in_chans=1, img_size=28, **MODELS[name]["kwargs"])
    params, callbacks, check = model, [], None
    setting = STRATEGIES[strategy]
    if setting is not None:  # exactly as `cnnlab train --init-from` applies its settings (run/setup.py)
        freeze, mult, new_fc = setting

        def load():
            return load_pretrained(model, a_path, new_fc=new_fc)

        if strategy == "checked":
            normalize = Normalize(*channel_stats(data.images))
            check, report = check_fit(model, load, data.images, data.labels, normalize, new_fc, seed)
        else:
            report = load()
        if check is None or check.fits:
            head = report.head_names(model)
            params = param_groups(model, LR, backbone_lr_mult=mult, head=head)
            callbacks = [FreezeSchedule("features", freeze, head=head)] if freeze else []
    res = fit(model, params, data, epochs, seed, callbacks, lr=LR)
    acc = evaluate(TorchClassifier(model, res["meta"], "cpu"), test)["accuracy"]
    return acc, (check.to_dict() if check is not None else None)


def experiment(name: str, seeds: list[int], sizes: list[int], pairs=PAIRS, strategies=STRATEGIES, log=print) -> None:
    fashion = load_dataset("fashion-mnist", val_split=0)
    rows = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    machine = {"cpu": hardware_info(torch.device("cpu"))["cpu"], "isa": cpu_isa(), "threads": torch.get_num_threads()}
    machine["precision"] = resolve_precision("auto", torch.device("cpu"))  # as fit() trains
    for pair in pairs:
        a_train, a_test, b_pool, b_test = tasks(pair, fashion)
        a_path = train_a(name, pair, a_train, a_test, log)
        fits = [n for n in sizes if n <= min(torch.bincount(b_pool.labels).tolist())]
        if fits != sizes:
            log(f"{pair}: B's pool has too few images per class for {sorted(set(sizes) - set(fits))}: skipped")
        for seed in seeds:
            for n in fits:
                data, epochs = per_class(b_pool, n, seed), MODELS[name]["epochs"][n]
                for strategy in strategies:
                    t = time.perf_counter()
                    acc, check = run_b(strategy, name, a_path, data, b_test, epochs, seed)
                    row = {"model": name, "pair": pair, "n": n, "seed": seed, "strategy": strategy, "accuracy": acc}
                    row |= {"fit_check": check} if check is not None else {}
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
    machines = sorted(
        {(r["model"], r["cpu"], r["isa"], r.get("precision", "fp32"), r["threads"], r["date"]) for r in rows}
    )
    if machines:
        lines.append("")
    for model, cpu, isa, precision, threads, date in machines:
        pairs = sorted({r["pair"] for r in rows if (r["model"], r["cpu"], r["date"]) == (model, cpu, date)})
        lines.append(f"{model}, {', '.join(pairs)}: {cpu}, ISA {isa}, {precision}, {threads} thread(s), {date}")
    table = "\n".join(lines)
    log(table)
    return table


def check_cost(threads: int, log=print) -> None:
    """Seconds one fit check takes (two forward passes over `CHECK_IMAGES` Fashion-MNIST training images) for each
    model, from its digits source (trained first if missing), twice each."""
    fashion = load_dataset("fashion-mnist", val_split=0)
    pick = balanced_sample(fashion.train.labels)
    images, labels = fashion.train.images[pick], fashion.train.labels[pick]
    normalize = Normalize(*channel_stats(images))
    digits = sklearn_digits()
    with use_threads(threads):
        for name in MODELS:
            source = train_a(name, "digits → fashion", *digits, log)
            for _ in range(2):
                torch.manual_seed(0)
                model = create_model(name, num_classes=10, in_chans=1, img_size=28, **MODELS[name]["kwargs"])
                t = time.perf_counter()
                check, _ = check_fit(
                    model, lambda m=model, s=source: load_pretrained(m, s, new_fc=True), images, labels, normalize
                )
                log(
                    f"{name}: fit check on {len(labels):,} images, {threads} thread(s): {time.perf_counter() - t:.2f} s"
                )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=list(MODELS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), choices=SIZES)
    p.add_argument("--pairs", nargs="+", default=[slug(p) for p in PAIRS], choices=[slug(p) for p in PAIRS])
    p.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=list(STRATEGIES))
    p.add_argument("--report", action="store_true")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: a shared 2-core CPU)")
    p.add_argument("--check-cost", action="store_true", help="time the fit check itself (lenet5, resnet18)")
    args = p.parse_args()
    if args.check_cost:
        check_cost(args.threads)
    if args.model:
        pairs = [p for p in PAIRS if slug(p) in args.pairs]
        with use_threads(args.threads):  # every Trainer inside takes them (its own choice would measure)
            experiment(args.model, args.seeds, args.sizes, pairs, args.strategies, log=lambda s: print(s, flush=True))
    if args.report:
        report()


if __name__ == "__main__":
    main()
