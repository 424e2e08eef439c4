"""Segmentation on generated scenes with masks: pixel accuracy and mIoU of `cnnlab train --task segment`.

The scenes are `cnnlab datasets make fashion-scenes --size 96 --objects 1-3 --masks` (Fashion-MNIST images at
random places, 24–48 px a side, on a black 96×96 canvas; a mask pixel is its object's class + 1 where the object is
at least THRESHOLD bright, 0 background; train scenes from the training images, test scenes from the test images),
read back through `masks:`. The run is the real `cnnlab train` path (`run.train.train_run`), so its numbers are those
of metrics.json: the test split's pixel accuracy and mIoU over the 11 classes, background included. After training,
the first four test scenes — image | true mask | predicted mask — go to --example (docs/images/segment_example.png).
Target: mIoU ≥ 0.85.

The default recipe is light on purpose: a 12×12×128 net and the FCN decoder scoring every stage down to the input's
resolution (`skips` 3), so no 3×3 convolution runs on a full-resolution decoder map (the U-Net decoder of the old
8×8×256 net trained 32 scenes/s at 64 px; this recipe about 4× that at 96 px), with Dice weight 1 beside the
cross-entropy (BENCHMARKS.md "Beyond classification": what was tried, by epochs).

Run (from the repository root; each run appends to benchmarks/results/segment_results.json):

    PYTHONPATH=src python -m benchmarks.features.segment --time-budget 10m --epochs 100 --n 10000
    PYTHONPATH=src python -m benchmarks.features.segment --epochs 1 --n 500 --note 'smoke run' --example ''  # a check
    PYTHONPATH=src python -m benchmarks.features.segment --report     # the Markdown table of the results

The scene set is made once in --work (default /tmp/cnnlab-segment) and reused; --n and --seed change it. A row
noted 'smoke run' says the path works, not how well the task is learnt; --example '' leaves the picture alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from benchmarks import RESULTS_DIR
from benchmarks.features import _scenes
from cnnlab.data.scenes import make_scene_set
from cnnlab.tasks.base import Task
from cnnlab.tasks.drawing import caption, enlarge

RESULTS = RESULTS_DIR / "segment_results.json"
SIZE = 96  # px a side of the scenes (the size; objects 24–48 px)
# a BN conv net in the course notation: 96×96 → stages at 96, 48 and 24 px, 12×12×128 final maps for the decoder;
# the second 3×3 conv at 12×12 widens what each cell's class sees (val. mIoU 0.44 against 0.35 without it, 4 epochs)
MODEL = "CL16k3-BN-MP4-CL32k3-BN-MP4-CL64k3-BN-MP4-CL128k3-BN-CL128k3-BN-FC10"
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
    out = work / f"fashion-scenes-{SIZE}-masks-n{n}-seed{seed}"
    if not (out / "classes.txt").exists():
        make_scene_set(
            "fashion-scenes", out, n, size=SIZE, count=(1, 3), test=n // 5, seed=seed, formats=("yolo",), masks=True
        )
    return out


def panels(task: Task, image: torch.Tensor, target: torch.Tensor, prediction: dict) -> list[Image.Image]:
    """image | truth | prediction: the scene, its true mask and the predicted mask drawn over it by `task.draw`."""
    k = task.num_classes
    onehot = F.one_hot(target.long().clamp_max(k - 1), k).permute(2, 0, 1)[None].float()  # (1, K, H, W)
    truth = task.decode(onehot)[0]
    return [caption(enlarge(image)[0], "image"), task.draw(image, truth), task.draw(image, prediction)]


def run(args) -> dict:
    data = scenes(Path(args.work), args.n, args.seed)
    task_args = {"decoder": args.decoder, "upsample": args.upsample, "skips": args.skips, "dice_weight": args.dice}
    m, wall = _scenes.train(args, f"masks:{data}", "segment", RECIPE, panels, task_args=task_args)
    return _scenes.record(
        RESULTS,
        args,
        m,
        wall,
        RECIPE,
        {"size": SIZE, "task_args": task_args, "test_pixel_accuracy": m["test_accuracy"], "test_miou": m["test_miou"]},
    )


def _decoder(size: int, a: dict) -> str:
    skips = f", {a.get('skips', 2)} skips" if a["decoder"] == "fcn" else ""  # rows before `skips`: FCN-8s's 2
    dice = f", Dice {a['dice_weight']:g}" if a.get("dice_weight") else ""
    return f"{size} px, {a['decoder']} ({a['upsample']}{skips}{dice})"


def report() -> str:
    return _scenes.table(
        RESULTS,
        ["size, decoder (upsampling, skips, loss)", "pixel accuracy", "mIoU"],
        lambda r: [
            _decoder(r.get("size", 64), r["task_args"]),
            f"{r['test_pixel_accuracy']:.4f}",
            f"{r['test_miou']:.4f}",
        ],
    )


def main() -> None:
    p = _scenes.parser(__doc__, "segment", MODEL, 10_000, "/tmp/cnnlab-segment")
    p.add_argument("--decoder", default="fcn", choices=("unet", "fcn"))
    p.add_argument("--upsample", default="transpose", choices=("transpose", "resize"))
    p.add_argument("--skips", type=int, default=3, help="fcn: the stages whose scores are added (3: down to 96 px)")
    p.add_argument("--dice", type=float, default=1.0, help="weight of (1 − soft Dice) beside the cross-entropy")
    args = p.parse_args()
    print(report() if args.report else json.dumps(run(args), indent=2))


if __name__ == "__main__":
    main()
