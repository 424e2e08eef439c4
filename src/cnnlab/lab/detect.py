"""Detection, step by step: the grid a single-stage detector lays over the image, which cell owns each object (the
target assignment), and a trained detector's raw candidates → those above the score threshold → what class-aware
non-maximum suppression keeps. The detector is `--task detect`'s (cnnlab/tasks/detect.py), trained here briefly on
generated scenes: shapes in quick mode, Fashion-MNIST objects otherwise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cnnlab.data import ImageSet, InMemoryLoader, Normalize, channel_stats
from cnnlab.data.scenes import make_scenes
from cnnlab.explain.plotting import figure
from cnnlab.lab._common import Report, _shape_masks, lesson_data, save_figure, stage
from cnnlab.models import create_model
from cnnlab.tasks import make_task
from cnnlab.tasks.average_precision import batched_nms
from cnnlab.tasks.detect import assign
from cnnlab.train import Trainer, build_optimizer

BACKBONE = "CL16k3-BN-MP4-CL32k3-BN-MP4-CL64k3-BN-FC10"  # a small BN conv net in the course notation
SETTINGS = {  # quick: shapes on a 48-px canvas; else Fashion-MNIST objects on 96 px
    True: {"size": 48, "grid": 6, "train": 600, "epochs": 8},
    False: {"size": 96, "grid": 8, "train": 3000, "epochs": 8},
}
CANDIDATE_SCORE = 0.02  # what the figure calls a raw candidate


def shape_objects(n: int, seed: int = 0) -> ImageSet:
    """n 28×28 object images: the lab's four 8×8 shapes (square, ring, plus, cross) scaled 3× on black."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    images = np.zeros((n, 28, 28), np.uint8)
    masks = [np.kron(m, np.ones((3, 3), bool)) for m in _shape_masks()]
    for img, k in zip(images, labels, strict=True):
        img[2:26, 2:26][masks[k]] = 220
    return ImageSet(torch.from_numpy(images)[:, None], torch.from_numpy(labels), ["square", "ring", "plus", "cross"])


def scene_set(objects: ImageSet, n: int, size: int, seed: int) -> ImageSet:
    """n scenes of 1–3 objects as an ImageSet of `boxes` targets (rows padded with class −1)."""
    scenes = make_scenes(objects, n, size, count=(1, 3), scale=(0.3, 0.5), seed=seed)
    most = max(len(s.objects) for s in scenes)
    boxes = torch.full((n, most, 5), -1.0)
    for i, s in enumerate(scenes):
        for j, row in enumerate(s.boxes()):
            boxes[i, j] = torch.tensor(row, dtype=torch.float32)
    images = torch.from_numpy(np.stack([s.image for s in scenes]))[:, None]
    return ImageSet(images, boxes, list(objects.classes), kind="boxes")


def train_detector(data: ImageSet, grid: int, epochs: int, seed: int = 0):
    """(model, task, normalize) of a detector trained on `data` with the Trainer (CPU, fp32, Adam)."""
    torch.manual_seed(seed)
    size = data.image_shape
    task = make_task("detect", data.classes, size, grid=grid)
    model = task.build(create_model(BACKBONE, num_classes=len(data.classes), in_chans=1, img_size=size[1]))
    norm = Normalize(*channel_stats(data.images))
    loader = InMemoryLoader(data, 32, shuffle=True, seed=seed, transform=norm)
    trainer = Trainer(model, build_optimizer("adam", model, 2e-3), device="cpu", precision="fp32", task=task)
    stage(f"lab: training a detector, {epochs} epochs of {len(data):,} scenes …")
    trainer.fit(loader, epochs)
    return model.eval(), task, norm


def steps_of(model, task, norm, image: torch.Tensor) -> dict:
    """The detector's output on one uint8 (1, H, W) image at each step: candidates, above the threshold, after NMS."""
    with torch.no_grad():
        out = model(norm(image[None].float()))[0]
    k = task.num_classes
    probs = out[:, :k].sigmoid()
    score, cls = probs.max(1)  # each cell's best class
    boxes = out[:, k:]
    candidates = (score >= CANDIDATE_SCORE).nonzero().flatten()
    above = candidates[score[candidates] >= float(task.args["score"])]
    keep = above[batched_nms(boxes[above], score[above], cls[above], float(task.args["nms_iou"]))]

    def rows(idx: torch.Tensor) -> list[tuple[int, float, list[float]]]:
        return [(int(c), float(v), b.tolist()) for c, v, b in zip(cls[idx], score[idx], boxes[idx], strict=True)]

    return {"candidates": rows(candidates), "above": rows(above), "kept": rows(keep)}


def run(quick: bool = True, out: Path | str = ".", echo=print, data: str | None = None) -> dict:
    say = Report(echo)
    s = SETTINGS[quick]
    objects = shape_objects(400) if quick and data is None else lesson_data(False, data, 2000, 10)[0]
    train = scene_set(objects, s["train"], s["size"], seed=1)
    test = scene_set(objects, 16, s["size"], seed=2)
    size, grid = s["size"], s["grid"]
    say(
        f"a {grid}×{grid} grid over a {size}×{size} image: each cell is {size // grid} px and predicts, for every class,"
    )
    say("a score (sigmoid of a logit), and one box (its distances to the four sides, decoded to x1, y1, x2, y2)")
    shown = int(((test.labels[..., 0] >= 0).sum(1) >= 2).int().argmax())  # the first test scene of 2+ objects
    truth, image = test.labels[shown], test.images[shown]
    owner = assign(truth[None], grid, (size, size))[0]
    for j, row in enumerate(truth.tolist()):
        if row[0] < 0:
            continue
        cells = (owner == j).nonzero().flatten().tolist()
        where = f"cell (row {cells[0] // grid}, col {cells[0] % grid})" if cells else "no cell (another object won it)"
        cx, cy = (row[1] + row[3]) / 2, (row[2] + row[4]) / 2
        name = objects.classes[int(row[0])]
        say(
            f"  {name} at x {row[1]:.0f}–{row[3]:.0f}, y {row[2]:.0f}–{row[4]:.0f}: centre ({cx:.1f}, {cy:.1f}) → {where}"
        )
    model, task, norm = train_detector(train, grid, s["epochs"])
    steps = steps_of(model, task, norm, image)
    say(
        f"after {s['epochs']} epochs on {len(train):,} scenes, on this image: {len(steps['candidates'])} cells with a "
        f"score ≥ {CANDIDATE_SCORE:g}, {len(steps['above'])} ≥ the threshold {float(task.args['score']):g}, "
        f"{len(steps['kept'])} after class-aware NMS at IoU {float(task.args['nms_iou']):g}"
    )
    for c, score, box in steps["kept"]:
        say(f"  kept: {objects.classes[c]} {score:.0%} at x {box[0]:.0f}–{box[2]:.0f}, y {box[1]:.0f}–{box[3]:.0f}")
    path = _plot(image[0].numpy(), truth, owner, steps, grid, objects.classes, out)
    say(f"figure: {path}")
    counts = {k: len(v) for k, v in steps.items()}
    return {"grid": grid, "size": size, "owners": owner.tolist(), "counts": counts, "figure": str(path)}


def _draw(ax, image, rows, classes, title, colour="tab:orange") -> None:
    from matplotlib.patches import Rectangle

    ax.imshow(image, cmap="gray", vmin=0, vmax=255)
    for _, score, (x1, y1, x2, y2) in rows:
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color=colour, lw=1, alpha=min(1, 0.3 + score)))
    for c, score, (x1, y1, _, _) in rows if len(rows) <= 6 else []:
        ax.text(x1, y1 - 1, f"{classes[c]} {score:.0%}", color=colour, fontsize=7)
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()


def _plot(image, truth, owner, steps, grid, classes, out) -> Path:
    from matplotlib.patches import Rectangle

    size = image.shape[-1]
    fig = figure((16, 4.4))
    axes = fig.subplots(1, 4)
    ax = axes[0]
    ax.imshow(image, cmap="gray", vmin=0, vmax=255)
    cell = size / grid
    for i in range(1, grid):
        ax.axhline(i * cell - 0.5, color="tab:cyan", lw=0.5)
        ax.axvline(i * cell - 0.5, color="tab:cyan", lw=0.5)
    for j, row in enumerate(truth.tolist()):
        if row[0] < 0:
            continue
        ax.add_patch(Rectangle((row[1], row[2]), row[3] - row[1], row[4] - row[2], fill=False, color="tab:green"))
        for c in (owner == j).nonzero().flatten().tolist():
            r, q = divmod(c, grid)
            ax.add_patch(Rectangle((q * cell - 0.5, r * cell - 0.5), cell, cell, color="tab:green", alpha=0.35))
        ax.plot((row[1] + row[3]) / 2, (row[2] + row[4]) / 2, "x", color="tab:green")
    ax.set_title(f"truth, the {grid}×{grid} grid, the cell that owns each object", fontsize=9)
    ax.set_axis_off()
    _draw(axes[1], image, steps["candidates"], classes, f"{len(steps['candidates'])} raw candidates")
    _draw(axes[2], image, steps["above"], classes, f"{len(steps['above'])} above the score threshold")
    _draw(axes[3], image, steps["kept"], classes, f"{len(steps['kept'])} after NMS", colour="tab:red")
    fig.suptitle("a single-stage grid detector, step by step (boxes fade with their score)")
    return save_figure(fig, out, "detect")
