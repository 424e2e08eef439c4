"""Localization on generated single-object scenes: class accuracy and mean IoU of `cnnlab train --task localize`.

The scenes are `cnnlab datasets make fashion-scenes --size 64 --objects 1` (a Fashion-MNIST image at a random
place, 16–32 px a side, on a black 64×64 canvas; train scenes from the training images, test scenes from the test
images), read back through `yolo:`. The run is the real `cnnlab train` path (`run.train.train_run`), so its numbers
are those of metrics.json: the test split's class accuracy, mean IoU and `loc_accuracy` (class right and IoU ≥ 0.5).
Target: class accuracy ≥ 95 % and mean IoU ≥ 0.85.

Run (from the repository root; each run appends to benchmarks/results/localize_results.json):

    PYTHONPATH=src python -m benchmarks.features.localize --epochs 12
    PYTHONPATH=src python -m benchmarks.features.localize --report     # the Markdown table of BENCHMARKS.md

The scene set is made once in --work (default /tmp/cnnlab-localize) and reused; --n and --seed change it.
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

RESULTS = RESULTS_DIR / "localize_results.json"
# a BN conv net in the course notation: 64×64 → 8×8×256 feature maps for the box head (4×4 grid, 256 hidden)
MODEL = "CL32k3-BN-MP4-CL64k3-BN-MP4-CL128k3-BN-MP4-CL256k3-BN-FC10"
RECIPE = {
    "batch_size": 128,
    "optimizer": "adamw",
    "lr": 2e-3,  # one-cycle peak, per step of 128 scenes
    "weight_decay": 5e-4,
    "schedule": "onecycle",
    "augment": "flip,translate=4",  # boxes move with the pixels
    "tta": True,  # flip TTA: the mirror's box is mirrored back before averaging
}


def scenes(work: Path, n: int, seed: int) -> Path:
    out = work / f"fashion-scenes-64-n{n}-seed{seed}"
    if not (out / "classes.txt").exists():
        make_scene_set("fashion-scenes", out, n, size=64, count=(1, 1), test=n // 5, seed=seed, formats=("yolo",))
    return out


def run(args: argparse.Namespace) -> dict:
    data = scenes(Path(args.work), args.n, args.seed)
    out = Path(args.work) / f"run-{time.strftime('%Y%m%d-%H%M%S')}"
    cfg = TrainConfig(
        data=f"yolo:{data}",
        task="localize",
        model=args.model,
        epochs=args.epochs,
        time_budget=args.time_budget,
        seed=args.seed,
        out=str(out),
        verbose=1,
        **RECIPE,
    )
    started = time.perf_counter()
    result = train_run(cfg)
    wall = time.perf_counter() - started
    m = result.metrics
    row = {
        "model": args.model,
        "epochs": args.epochs,
        "time_budget": args.time_budget,
        "epochs_trained": m["epochs"],
        "steps": m["steps"],
        "scenes": args.n,  # made; the run validates on 10 % of them and trains on the rest
        "seed": args.seed,
        "test_accuracy": m["test_accuracy"],
        "test_iou": m["test_iou"],
        "test_loc_accuracy": m["test_loc_accuracy"],
        "train_seconds": m["train_seconds"],
        "wall_seconds": round(wall, 1),
        "threads": torch.get_num_threads(),
        "cpu": hardware_info(torch.device("cpu"))["cpu"],
        "precision": m["precision"],
        "versions": {"cnnlab": cnnlab.__version__, "torch": torch.__version__, "python": platform.python_version()},
        "config": {**RECIPE, "model": args.model},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    rows = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    RESULTS.write_text(json.dumps([*rows, row], indent=2) + "\n")
    return row


def report() -> str:
    rows = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    lines = [
        "| model | epochs | scenes (train + val) | seed | class accuracy | mean IoU | loc. accuracy (IoU ≥ 0.5) | "
        "train s | wall s | CPU, threads, precision |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| `{r['model']}` | {r['epochs']} | {r['scenes']:,} | {r['seed']} | {r['test_accuracy']:.4f} | "
            f"{r['test_iou']:.4f} | {r['test_loc_accuracy']:.4f} | {r['train_seconds']:,.0f} | "
            f"{r['wall_seconds']:,.0f} | {r['cpu']}, {r['threads']}, {r['precision']} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=MODEL)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument(
        "--time-budget", default=None, help="e.g. 10m: the whole run within it (--epochs is then the most it runs)"
    )
    p.add_argument("--n", type=int, default=20_000, help="training scenes (test: n / 5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the scenes and of the run")
    p.add_argument("--work", default="/tmp/cnnlab-localize", help="folder for the scenes and the run folders")
    p.add_argument("--report", action="store_true", help="print the table of the results so far")
    args = p.parse_args()
    if args.report:
        print(report())
        return
    row = run(args)
    print(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
