"""Segmentation on generated scenes with masks: pixel accuracy and mIoU of `cnnlab train --task segment`.

The scenes are `cnnlab datasets make fashion-scenes --size 64 --objects 1-3 --masks` (Fashion-MNIST images at
random places, 16–32 px a side, on a black 64×64 canvas; a mask pixel is its object's class + 1 where the object is
at least THRESHOLD bright, 0 background; train scenes from the training images, test scenes from the test images),
read back through `masks:`. The run is the real `cnnlab train` path (`run.train.train_run`), so its numbers are those
of metrics.json: the test split's pixel accuracy and mIoU over the 11 classes, background included.

Run (from the repository root; each run appends to benchmarks/results/segment_results.json):

    PYTHONPATH=src python -m benchmarks.features.segment --epochs 12
    PYTHONPATH=src python -m benchmarks.features.segment --epochs 1 --n 500 --note 'smoke run'   # a check
    PYTHONPATH=src python -m benchmarks.features.segment --report     # the Markdown table of the results

The scene set is made once in --work (default /tmp/cnnlab-segment) and reused; --n and --seed change it. A row
noted 'smoke run' says the path works, not how well the task is learnt.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import RESULTS_DIR
from benchmarks.features import _scenes
from cnnlab.data.scenes import make_scene_set

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


def run(args) -> dict:
    data = scenes(Path(args.work), args.n, args.seed)
    task_args = {"decoder": args.decoder, "upsample": args.upsample}
    m, wall = _scenes.train(args, f"masks:{data}", "segment", RECIPE, task_args=task_args)
    return _scenes.record(
        RESULTS,
        args,
        m,
        wall,
        RECIPE,
        {"task_args": task_args, "test_pixel_accuracy": m["test_accuracy"], "test_miou": m["test_miou"]},
    )


def report() -> str:
    return _scenes.table(
        RESULTS,
        ["decoder, upsampling", "pixel accuracy", "mIoU"],
        lambda r: [
            f"{r['task_args']['decoder']}, {r['task_args']['upsample']}",
            f"{r['test_pixel_accuracy']:.4f}",
            f"{r['test_miou']:.4f}",
        ],
    )


def main() -> None:
    p = _scenes.parser(__doc__, MODEL, 20_000, "/tmp/cnnlab-segment")
    p.add_argument("--decoder", default="unet", choices=("unet", "fcn"))
    p.add_argument("--upsample", default="transpose", choices=("transpose", "resize"))
    args = p.parse_args()
    print(report() if args.report else json.dumps(run(args), indent=2))


if __name__ == "__main__":
    main()
