"""Segmentation on generated scenes with masks: pixel accuracy and mIoU of `cnnlab train --task segment`.

The scenes are `cnnlab datasets make fashion-scenes --size 64 --objects 1-3 --masks` (Fashion-MNIST images at
random places, 16–32 px a side, on a black 64×64 canvas; a mask pixel is its object's class + 1 where the object is
at least THRESHOLD bright, 0 background; train scenes from the training images, test scenes from the test images),
read back through `masks:`. The run is the real `cnnlab train` path (`run.train.train_run`), so its numbers are those
of metrics.json: the test split's pixel accuracy and mIoU over the 11 classes, background included.

Run (from the repository root; each run appends to benchmarks/results/segment_results.json):

    PYTHONPATH=src python -m benchmarks.features.segment --epochs 12
    PYTHONPATH=src python -m benchmarks.features.segment --epochs 1 --n 500 --smoke   # a check that it runs
    PYTHONPATH=src python -m benchmarks.features.segment --report     # the Markdown table of the results

The scene set is made once in --work (default /tmp/cnnlab-segment) and reused; --n and --seed change it. A row
made with --smoke is marked so: it says the path works, not how well the task is learnt.
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

RESULTS = RESULTS_DIR / "segment_results.json"
# a BN conv net in the course notation: 64×64 → stages at 64, 32, 16 and 8 px, 8×8×256 final maps for the decoder
MODEL = "CL32k3-BN-MP4-CL64k3-BN-MP4-CL128k3-BN-MP4-CL256k3-BN-FC10"
RECIPE = {
    "batch_size": 64,
    "optimizer": "adamw",
    "lr": 2e-3,  # one-cycle peak, per step of 64 scenes
    "weight_decay": 5e-4,
    "schedule": "onecycle",
    "augment": "flip,translate=4",  # masks move with the pixels (nearest-neighbour)
    "tta": True,  # flip TTA: the mirror's logits are mirrored back before averaging
}


def scenes(work: Path, n: int, seed: int) -> Path:
    out = work / f"fashion-scenes-64-masks-n{n}-seed{seed}"
    if not (out / "classes.txt").exists():
        make_scene_set(
            "fashion-scenes", out, n, size=64, count=(1, 3), test=n // 5, seed=seed, formats=("yolo",), masks=True
        )
    return out


def run(args: argparse.Namespace) -> dict:
    data = scenes(Path(args.work), args.n, args.seed)
    out = Path(args.work) / f"run-{time.strftime('%Y%m%d-%H%M%S')}"
    task_args = {"decoder": args.decoder, "upsample": args.upsample}
    cfg = TrainConfig(
        data=f"masks:{data}",
        task="segment",
        task_args=task_args,
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
        "smoke": args.smoke,
        "model": args.model,
        "task_args": task_args,
        "epochs": args.epochs,
        "time_budget": args.time_budget,
        "epochs_trained": m["epochs"],
        "steps": m["steps"],
        "scenes": args.n,  # made; the run validates on 10 % of them and trains on the rest
        "seed": args.seed,
        "test_pixel_accuracy": m["test_accuracy"],
        "test_miou": m["test_miou"],
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
        "| model | decoder, upsampling | epochs | scenes (train + val) | seed | pixel accuracy | mIoU | train s | "
        "wall s | CPU, threads, precision |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        kind = f"{r['task_args']['decoder']}, {r['task_args']['upsample']}" + (" (smoke run)" if r["smoke"] else "")
        lines.append(
            f"| `{r['model']}` | {kind} | {r['epochs']} | {r['scenes']:,} | {r['seed']} | "
            f"{r['test_pixel_accuracy']:.4f} | {r['test_miou']:.4f} | {r['train_seconds']:,.0f} | "
            f"{r['wall_seconds']:,.0f} | {r['cpu']}, {r['threads']}, {r['precision']} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=MODEL)
    p.add_argument("--decoder", default="unet", choices=("unet", "fcn"))
    p.add_argument("--upsample", default="transpose", choices=("transpose", "resize"))
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument(
        "--time-budget", default=None, help="e.g. 10m: the whole run within it (--epochs is then the most it runs)"
    )
    p.add_argument("--n", type=int, default=20_000, help="training scenes (test: n / 5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the scenes and of the run")
    p.add_argument("--work", default="/tmp/cnnlab-segment", help="folder for the scenes and the run folders")
    p.add_argument("--smoke", action="store_true", help="mark the row as a smoke run (a check, not a result)")
    p.add_argument("--report", action="store_true", help="print the table of the results so far")
    args = p.parse_args()
    if args.report:
        print(report())
        return
    row = run(args)
    print(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
