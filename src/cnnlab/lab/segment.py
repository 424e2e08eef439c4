"""Segmentation: where a U-Net loses edges. Four small U-Nets, each one line of the course notation, are trained the
same way on the same generated scenes (the `fashion-scenes` generator with its masks: Fashion-MNIST objects, or the
lab's shapes in quick mode) — with and without skip connections (SK … CC), upsampling by a learnt 2×2/2 transposed
conv (UT) or by a bilinear resize and a 3×3 conv (UR). The table gives each one's pixel accuracy, mIoU (through
`--task segment`'s metrics) and accuracy on boundary pixels (within BOUNDARY px of a class change in the truth);
the figure shows, for a few test scenes, each variant's mask with the boundary pixels where it missed the outline
(object for background or back) in white.

Without skips the way up has only the 1/4-size bottom map to place edges from: its masks are blobs whose outlines
miss by a pixel or two, which pixel accuracy hardly sees (most pixels are background or deep inside an object)
and boundary accuracy does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cnnlab import infer
from cnnlab.data import ImageSet, InMemoryLoader, Normalize, channel_stats
from cnnlab.data.masks import IGNORE
from cnnlab.data.scenes import make_scenes
from cnnlab.explain.plotting import figure
from cnnlab.lab._common import Report, lesson_data, save_figure, stage
from cnnlab.lab.detect import shape_objects
from cnnlab.models import create_model
from cnnlab.tasks import make_task
from cnnlab.train import Trainer, build_optimizer

SETTINGS = {  # quick: the lab's shapes on a 32-px canvas; else Fashion-MNIST objects on 64 px (fashion-scenes)
    True: {"size": 32, "width": 8, "train": 192, "test": 24, "epochs": 2, "batch": 32},
    False: {"size": 64, "width": 16, "train": 2400, "test": 300, "epochs": 3, "batch": 16},
}
BOUNDARY = 2  # px: a pixel this close to a class change in the truth (a 5×5 window holds two classes) is on an edge
VARIANTS = {  # name → (upsampling token, skip connections)
    "skips, UT": ("UT", True),
    "skips, UR": ("UR", True),
    "no skips, UT": ("UT", False),
    "no skips, UR": ("UR", False),
}
SHOWN = 3  # test scenes in the figure
DIM = 0.4  # brightness of a wrong pixel away from the edges, in the figure


def unet(width: int, classes: int, up: str, skips: bool) -> str:
    """A two-level U-Net in the course notation: `width` filters at full size, twice as many at each level down,
    `up` (UT or UR) on the way up, SK … CC skip connections or none, CL<classes>k1 per pixel at the end."""
    sk, cc = ("-SK", "-CC") if skips else ("", "")
    w, w2, w4 = width, 2 * width, 4 * width
    return (
        f"CL{w}k3-BN{sk}-MP4-CL{w2}k3-BN{sk}-MP4-CL{w4}k3-BN-{up}{w2}{cc}-CL{w2}k3-BN-{up}{w}{cc}-CL{w}k3-BN"
        f"-CL{classes}k1"
    )


def scene_masks(objects: ImageSet, n: int, size: int, seed: int) -> ImageSet:
    """n scenes of 1–3 objects with their masks (0 background, class k of `objects` is k + 1)."""
    scenes = make_scenes(objects, n, size, count=(1, 3), scale=(0.3, 0.5), seed=seed)
    images = torch.from_numpy(np.stack([s.image for s in scenes]))[:, None]
    masks = torch.from_numpy(np.stack([s.mask() for s in scenes]))
    return ImageSet(images, masks, ["background", *objects.classes], kind="mask")


def boundary(masks: torch.Tensor, radius: int = BOUNDARY) -> torch.Tensor:
    """(N, H, W) bool: pixels with another class within `radius` px (a (2r + 1)² window) in the truth `masks`."""
    m = masks.float()[:, None]  # (N, 1, H, W)
    window = 2 * radius + 1
    high = F.max_pool2d(m, window, 1, radius)  # pads with −∞: the image's border is no class change
    low = -F.max_pool2d(-m, window, 1, radius)
    return (high != low)[:, 0]


def train_variant(text: str, data: ImageSet, epochs: int, batch: int, name: str, seed: int = 0):
    """(model, task, mean, std): the notation net `text` trained by the Trainer with `--task segment`'s loss."""
    torch.manual_seed(seed)
    size = data.image_shape
    task = make_task("segment", data.classes, size)
    model = task.build(create_model(text, num_classes=len(data.classes), in_chans=1, img_size=size[1]))
    mean, std = channel_stats(data.images)
    loader = InMemoryLoader(data, batch, shuffle=True, seed=seed, transform=Normalize(mean, std))
    trainer = Trainer(model, build_optimizer("adam", model, 3e-3), device="cpu", precision="fp32", task=task)
    stage(f"lab: training the U-Net with {name}, {epochs} epochs of {len(data):,} scenes …")
    trainer.fit(loader, epochs)
    return model.eval(), task, mean, std


def scores(task, outputs: torch.Tensor, masks: torch.Tensor) -> dict:
    """Pixel accuracy and mIoU (the task's metrics), accuracy on boundary pixels (`boundary`; `outline`: object or
    background right there, whatever the class) and on the other pixels (`interior`)."""
    result = task.metrics(outputs, masks)
    preds, truth = outputs.argmax(1), masks.long()
    right = preds == truth
    valid = masks != IGNORE
    edge = boundary(masks) & valid
    return {
        "accuracy": result["accuracy"],
        "miou": result["miou"],
        "boundary": right[edge].float().mean().item(),
        "outline": ((preds > 0) == (truth > 0))[edge].float().mean().item(),
        "interior": right[valid & ~edge].float().mean().item(),
        "boundary_share": edge.sum().item() / valid.sum().item(),
    }


def run(quick: bool = True, out: Path | str = ".", echo=print, data: str | None = None) -> dict:
    say = Report(echo)
    s = SETTINGS[quick]
    if quick and data is None:
        objects, test_objects = shape_objects(400, seed=0), shape_objects(100, seed=1)
    else:
        objects, test_objects = lesson_data(False, data, 6000, 1000)
    train = scene_masks(objects, s["train"], s["size"], seed=1)
    test = scene_masks(test_objects, s["test"], s["size"], seed=2)
    k = len(train.classes)
    say(
        f"{len(train):,} training and {len(test):,} test scenes of {s['size']}×{s['size']}, {k} classes (background and "
        f"{k - 1} objects); boundary pixels: within {BOUNDARY} px of a class change in the truth"
    )
    rows, masks = {}, {}
    for name, (up, skips) in VARIANTS.items():
        text = unet(s["width"], k, up, skips)
        model, task, mean, std = train_variant(text, train, s["epochs"], s["batch"], name)
        outputs = infer.predict_logits(model, test.images, mean, std, "cpu", "fp32", fold_bn=False)
        params = sum(p.numel() for p in model.parameters())
        rows[name] = {"notation": text, "params": params, **scores(task, outputs, test.labels)}
        masks[name] = outputs.argmax(1)
        say(f"  {name:<13} {text}  ({params:,} parameters)")
    _table(say, rows)
    shown = _shown(test.labels)
    path = _plot(test, shown, masks, rows, task.palette(), out)
    say(f"figure: {path}")
    return {"variants": rows, "boundary_share": rows["skips, UT"]["boundary_share"], "figure": str(path)}


def _table(say: Report, rows: dict) -> None:
    say("")
    say(
        f"{'variant':<14}{'params':>8}{'pixel acc':>11}{'mIoU':>8}{'boundary acc':>14}{'outline':>9}{'interior acc':>14}"
    )
    for name, r in rows.items():
        say(
            f"{name:<14}{r['params']:>8,}{r['accuracy']:>11.2%}{r['miou']:>8.3f}{r['boundary']:>14.2%}"
            f"{r['outline']:>9.2%}{r['interior']:>14.2%}"
        )
    share = next(iter(rows.values()))["boundary_share"]
    say(
        f"({share:.1%} of the test pixels are boundary pixels; outline: object vs background right on them, whatever "
        "the class)"
    )
    say(
        f"with skips, the outline on boundary pixels is right {_skip_gain(rows, 'outline'):+.1f} points more often, "
        f"the class there {_skip_gain(rows, 'boundary'):+.1f} points (mean over UT and UR)"
    )


def _skip_gain(rows: dict, key: str) -> float:
    """`key` with skips minus without, in points, averaged over the two upsamplings."""
    gains = [rows[f"skips, {up}"][key] - rows[f"no skips, {up}"][key] for up in ("UT", "UR")]
    return 100 * sum(gains) / len(gains)


def _shown(masks: torch.Tensor) -> list[int]:
    """The test scenes in the figure: the first SHOWN with two or more objects' classes (else the first ones)."""
    rich = [i for i, m in enumerate(masks) if len(torch.unique(m)) >= 3]
    return (rich + [i for i in range(len(masks)) if i not in rich])[:SHOWN]


def _plot(test: ImageSet, shown: list[int], masks: dict, rows: dict, palette: list[int], out) -> Path:
    colours = np.asarray(palette, np.float32).reshape(-1, 3) / 255  # class index → RGB
    cols = 2 + len(masks)
    fig = figure((2.3 * cols, 2.5 * len(shown) + 0.6))
    axes = np.atleast_2d(fig.subplots(len(shown), cols))
    for n, (row, i) in enumerate(zip(axes, shown, strict=True)):
        truth = test.labels[i].numpy()
        edge = boundary(test.labels[i][None])[0].numpy()
        row[0].imshow(test.images[i, 0].numpy(), cmap="gray", vmin=0, vmax=255)
        row[1].imshow(colours[truth], interpolation="nearest")
        row[1].contour(edge, levels=[0.5], colors="0.6", linewidths=0.6)
        for ax, (name, pred) in zip(row[2:], masks.items(), strict=True):
            p = pred[i].numpy()
            lost = ((p > 0) != (truth > 0)) & edge  # object for background or back: the outline missed here
            other = (p != truth) & ~lost  # a wrong class, or wrong away from the edges
            rgb = colours[p]
            rgb[other] *= DIM  # the class it predicted, dimmed
            rgb[lost] = 1  # white: no class has it
            ax.imshow(rgb, interpolation="nearest")
            got = rows[name]
            overall = f"{name}\noutline {got['outline']:.1%}, boundary {got['boundary']:.1%}\n" if n == 0 else ""
            ax.set_title(f"{overall}{int(lost.sum())} outline, {int(other.sum())} other errors", fontsize=8)
    axes[0, 0].set_title("image", fontsize=9)
    axes[0, 1].set_title(f"truth\n(grey line: {BOUNDARY} px from an edge)", fontsize=8)
    for ax in axes.flat:
        ax.set_axis_off()
    fig.suptitle(
        f"each variant's mask in its class colours; white: the outline missed (object vs background wrong within "
        f"{BOUNDARY} px of an edge), dimmed: a wrong class, or wrong away from the edges",
        fontsize=10,
    )
    return save_figure(fig, out, "segment")
