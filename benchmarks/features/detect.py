"""Detection on generated multi-object scenes: COCO-style mAP of `cnnlab train --task detect`.

The scenes are `cnnlab datasets make fashion-scenes --size 96 --objects 1-4` (Fashion-MNIST images at random
places and sizes on a black 96×96 canvas; train scenes from the training images, test scenes from the test
images), read back through `coco:`. The run is the real `cnnlab train` path (`run.train.train_run`), so its numbers
are those of metrics.json: the test split's mAP@0.5:0.95 and mAP@0.5 (`cnnlab.tasks.average_precision`, checked
against pycocotools in the tests) and the class accuracy at each object's own cell. Target: mAP@0.5 ≥ 0.90 and
mAP@0.5:0.95 ≥ 0.60. After training, the first four test scenes with the detected boxes, classes and scores go to
--example (docs/images/detect_example.png).

Run (from the repository root; each run appends to benchmarks/results/detect_results.json):

    PYTHONPATH=src python -m benchmarks.features.detect --time-budget 10m --epochs 100 --n 20000
    PYTHONPATH=src python -m benchmarks.features.detect --report     # the Markdown table of the results

The scene set is made once in --work (default /tmp/cnnlab-detect) and reused; --n and --seed change it.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import RESULTS_DIR
from benchmarks.features import _scenes
from cnnlab.data.scenes import make_scene_set

RESULTS = RESULTS_DIR / "detect_results.json"
# a BN conv net in the course notation: 96×96 → 12×12×128 feature maps, one cell per 8×8 pixels (grid 12: the
# head's grid equals the maps, so nothing is resampled); half the width of the earlier 12×12×256 net, 3× the scenes
# per second (BENCHMARKS.md "Beyond classification")
MODEL = "CL16k3-BN-MP4-CL32k3-BN-MP4-CL64k3-BN-MP4-CL128k3-BN-FC10"
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


def run(args) -> dict:
    data = scenes(Path(args.work), args.n, args.seed)
    m, wall = _scenes.train(args, f"coco:{data}", "detect", RECIPE)
    return _scenes.record(
        RESULTS,
        args,
        m,
        wall,
        RECIPE,
        {"test_map": m["test_map"], "test_map50": m["test_map50"], "test_accuracy": m["test_accuracy"]},
    )


def report() -> str:
    return _scenes.table(
        RESULTS,
        ["mAP@0.5:0.95", "mAP@0.5", "class at cell"],
        lambda r: [f"{r['test_map']:.4f}", f"{r['test_map50']:.4f}", f"{r['test_accuracy']:.4f}"],
    )


def main() -> None:
    p = _scenes.parser(__doc__, "detect", MODEL, 20_000, "/tmp/cnnlab-detect")
    args = p.parse_args()
    print(report() if args.report else json.dumps(run(args), indent=2))


if __name__ == "__main__":
    main()
