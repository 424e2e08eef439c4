"""Detection on generated multi-object scenes: COCO-style mAP of `cnnlab train --task detect`.

The scenes are `cnnlab datasets make fashion-scenes --size 96 --objects 1-4` (Fashion-MNIST images at random
places and sizes on a black 96×96 canvas; train scenes from the training images, test scenes from the test
images), read back through `coco:`. The run is the real `cnnlab train` path (`run.train.train_run`), so its numbers
are those of metrics.json: the test split's mAP@0.5:0.95 and mAP@0.5 (`cnnlab.tasks.average_precision`, checked
against pycocotools in the tests) and the class accuracy at each object's own cell.

Run (from the repository root; each run appends to benchmarks/results/detect_results.json):

    PYTHONPATH=src python -m benchmarks.features.detect --epochs 12
    PYTHONPATH=src python -m benchmarks.features.detect --report     # the Markdown table of the results

The scene set is made once in --work (default /tmp/cnnlab-detect) and reused; --n and --seed change it.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

import cnnlab
from benchmarks import RESULTS_DIR
from cnnlab.data.scenes import make_scene_set
from cnnlab.run.train import train_run
from cnnlab.runtime import hardware_info
from cnnlab.train.config import TrainConfig

RESULTS = RESULTS_DIR / "detect_results.json"
# a BN conv net in the course notation: 96×96 → 12×12×256 feature maps, one cell per 8×8 pixels (grid 12: the
# head's grid equals the maps, so nothing is resampled)
MODEL = "CL32k3-BN-MP4-CL64k3-BN-MP4-CL128k3-BN-MP4-CL256k3-BN-FC10"
RECIPE = {
    "batch_size": 64,
    "optimizer": "adamw",
    "lr": 2e-3,  # one-cycle peak, per step of 64 scenes
    "weight_decay": 5e-4,
    "schedule": "onecycle",
    "augment": "flip,translate=4",  # boxes move with the pixels
    "task_args": {"grid": 12, "hidden": 128},
}


def scenes(work: Path, n: int, seed: int) -> Path:
    out = work / f"fashion-scenes-96-1to4-n{n}-seed{seed}"
    if not (out / "test.json").exists():  # the last file the COCO writer writes
        make_scene_set("fashion-scenes", out, n, size=96, count=(1, 4), test=n // 5, seed=seed, formats=("coco",))
    return out


def run(args: argparse.Namespace) -> dict:
    data = scenes(Path(args.work), args.n, args.seed)
    out = Path(args.work) / f"run-{time.strftime('%Y%m%d-%H%M%S')}"
    cfg = TrainConfig(
        data=f"coco:{data}",
        task="detect",
        model=args.model,
        epochs=args.epochs,
        time_budget=args.time_budget,
        seed=args.seed,
        out=str(out),
        **RECIPE,
    )
    started = time.perf_counter()
    m = train_run(cfg).metrics
    wall = time.perf_counter() - started
    row = {
        "model": args.model,
        "epochs": args.epochs,
        "time_budget": args.time_budget,
        "epochs_trained": m["epochs"],
        "steps": m["steps"],
        "scenes": args.n,  # made; the run validates on 10 % of them and trains on the rest
        "seed": args.seed,
        "test_map": m["test_map"],
        "test_map50": m["test_map50"],
        "test_accuracy": m["test_accuracy"],
        "train_seconds": m["train_seconds"],
        "wall_seconds": round(wall, 1),
        "threads": torch.get_num_threads(),
        "cpu": hardware_info(torch.device("cpu"))["cpu"],
        "precision": m["precision"],
        "versions": {"cnnlab": cnnlab.__version__, "torch": torch.__version__, "python": platform.python_version()},
        "config": {**RECIPE, "model": args.model},
        "note": args.note,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    rows = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    RESULTS.write_text(json.dumps([*rows, row], indent=2) + "\n")
    return row


def report() -> str:
    rows = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    lines = [
        "| model | epochs | scenes (train + val) | seed | mAP@0.5:0.95 | mAP@0.5 | class at cell | train s | wall s | "
        "CPU, threads, precision | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| `{r['model']}` | {r['epochs']} | {r['scenes']:,} | {r['seed']} | {r['test_map']:.4f} | "
            f"{r['test_map50']:.4f} | {r['test_accuracy']:.4f} | {r['train_seconds']:,.0f} | "
            f"{r['wall_seconds']:,.0f} | {r['cpu']}, {r['threads']}, {r['precision']} | {r.get('note') or ''} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=MODEL)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument(
        "--time-budget", default=None, help="e.g. 10m: the whole run within it (--epochs is then the most it runs)"
    )
    p.add_argument("--n", type=int, default=10_000, help="training scenes (test: n / 5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the scenes and of the run")
    p.add_argument("--work", default="/tmp/cnnlab-detect", help="folder for the scenes and the run folders")
    p.add_argument("--note", default="", help="a word on the run kept with its row, e.g. 'smoke run'")
    p.add_argument("--report", action="store_true", help="print the table of the results so far")
    args = p.parse_args()
    if args.report:
        print(report())
        return
    print(json.dumps(run(args), indent=2))


if __name__ == "__main__":
    main()
