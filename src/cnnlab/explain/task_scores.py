"""What an explanation of a localize, detect or segment model backpropagates: one score, chosen on the prediction
that `cnnlab predict` shows for the same image, and the figure that shows it.

| task     | the score explained (`explain RUN saliency`)                                                    |
|----------|-------------------------------------------------------------------------------------------------|
| localize | the logit of a class (`--target`, default the predicted one); the predicted box is drawn         |
| detect   | detection K of predict's list (`--detection K`, best first, default 0): the logit of its class at |
|          | the grid cell that made it (its sigmoid is the detection's score)                                |
| segment  | one pixel's logit of its predicted class (`--pixel ROW,COL`, default: the pixel of the largest    |
|          | predicted object nearest its centre; `--target` another class at that pixel)                     |

The choice is made on predict's outputs (`infer.TorchClassifier`: BN folded, the run's precision and flip TTA), so
detection K is the K-th object predict prints. The gradient is taken through the model itself (unfolded, float32,
one unmirrored pass); where the run uses flip TTA, the line says what that pass alone scores.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from torch import nn

from cnnlab.explain._common import explaining, logits_of, to_input
from cnnlab.explain.plotting import figure, save, show
from cnnlab.explain.saliency import Score
from cnnlab.infer import TorchClassifier
from cnnlab.io import RunMeta
from cnnlab.tasks.drawing import COLOURS

TASKS = ("localize", "detect", "segment")  # the tasks whose scores this module picks (classify: saliency.saliency)


@dataclass
class Explained:
    """One image's choice: the score to backpropagate, the line that says what it is, and what to draw."""

    score: Score  # raw outputs (B, ...) → (B,)
    text: str  # one line: what was explained
    box: list[float] | None = None  # localize / detect: x1, y1, x2, y2 in pixels of the model's input
    label: str = ""  # the box's caption
    colour: str = COLOURS[0]
    pixel: tuple[int, int] | None = None  # segment: (row, column)
    overlay: np.ndarray | None = None  # segment: the predicted mask's colours (H, W, 3) on 0–1, NaN on background
    legend: list[tuple[str, str]] = field(default_factory=list)  # segment: (class, colour) of the classes shown
    local: bool = False  # the score is made at one place: Grad-CAM keeps the gradient per position (`gradcam`)


def _outputs(model: nn.Module, meta: RunMeta, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(predict's outputs, the explained pass's outputs) of one uint8 image (C, H, W), each (1, ...) float32."""
    device = next(model.parameters()).device
    shown = TorchClassifier(model, meta, device).logits(image[None]).float()
    with explaining(model), torch.no_grad():
        plain = logits_of(model, to_input(image[None], meta).to(device)).float().cpu()
    return shown, plain


def _tta_note(meta: RunMeta, alone: float) -> str:
    return (
        f" (predict averages in the mirrored image, flip TTA; the pass explained alone: {alone:.0%})"
        if meta.tta
        else ""
    )


def _where(box: list[float]) -> str:
    return f"x {box[0]:.0f}–{box[2]:.0f}, y {box[1]:.0f}–{box[3]:.0f}"


def detection_score(model: nn.Module, meta: RunMeta, image: torch.Tensor, index: int | None = None) -> Explained:
    """Detection `index` (default 0, the best) of `cnnlab predict`'s list for `image`: its class logit at its cell."""
    task = meta.make_task()
    shown, plain = _outputs(model, meta, image)
    boxes, scores, classes, cells = task.detections(shown)[0]
    n, k = len(scores), 0 if index is None else index
    if not n:
        raise ValueError(
            f"no detection with a score ≥ {float(task.args['score']):g} in this image: nothing to explain "
            "(`cnnlab predict` finds none either)"
        )
    if not 0 <= k < n:
        raise ValueError(
            f"--detection {k}: this image has {n} detection{'s' if n > 1 else ''}, numbered 0–{n - 1} best first "
            "as `cnnlab predict RUN IMAGE` lists them"
        )
    cell, cls, box = int(cells[k]), int(classes[k]), [float(v) for v in boxes[k]]
    row, col = divmod(cell, task.grid)
    name, label = meta.classes[cls], f"{meta.classes[cls]} {float(scores[k]):.0%}"
    text = (
        f"detection {k} of {n} ({label} at {_where(box)}): its {name} logit at grid cell row {row}, column {col} "
        f"of {task.grid}×{task.grid}" + _tta_note(meta, float(plain[0, cell, cls].sigmoid()))
    )
    return Explained(lambda out: out[:, cell, cls], text, box, label, COLOURS[cls % len(COLOURS)], local=True)


def localization_score(model: nn.Module, meta: RunMeta, image: torch.Tensor, target: int | None = None) -> Explained:
    """The logit of class `target` (default: the predicted class) of a localize model, with its predicted box."""
    task = meta.make_task()
    shown, plain = _outputs(model, meta, image)
    k = task.num_classes
    probs = shown[0, :k].softmax(0)
    pred = int(probs.argmax())
    cls = pred if target is None else target
    box = [float(v) for v in task.boxes(shown)[0]]
    label = f"{meta.classes[pred]} {float(probs[pred]):.0%}"
    alone = float(plain[0, :k].softmax(0)[cls])
    text = f"the {meta.classes[cls]} logit (predicted {label}, box {_where(box)})" + _tta_note(meta, alone)
    return Explained(lambda out: out[:, cls], text, box, label, COLOURS[pred % len(COLOURS)])


def components(mask: torch.Tensor) -> torch.Tensor:
    """(H, W) int64 labels of the 4-connected regions of one class each in a class mask (H, W); 0 on background.

    Each pixel takes the largest label among its same-class neighbours until nothing changes (at most as many
    rounds as the longest path inside a region)."""
    h, w = mask.shape
    m = mask.long()
    ids = (torch.arange(1, h * w + 1).view(h, w)) * (m > 0)
    while True:
        new = ids.clone()
        for dim, step in ((0, 1), (0, -1), (1, 1), (1, -1)):
            n_ids, n_cls = ids.roll(step, dim), m.roll(step, dim)
            edge = torch.zeros_like(m, dtype=torch.bool)  # roll wraps around: the wrapped row / column is no neighbour
            edge.select(dim, 0 if step == 1 else -1).fill_(True)
            new = torch.where((n_cls == m) & (m > 0) & ~edge, torch.maximum(new, n_ids), new)
        if torch.equal(new, ids):
            return ids
        ids = new


def largest_object_pixel(mask: torch.Tensor) -> tuple[int, int] | None:
    """The pixel of the largest predicted region (not background) nearest its centroid — inside the region even
    for a ring — or None when the mask is all background."""
    ids = components(mask)
    sizes = torch.bincount(ids.flatten())
    sizes[0] = 0
    if not int(sizes.max()):
        return None
    rows, cols = (ids == int(sizes.argmax())).nonzero(as_tuple=True)
    d = (rows.float() - rows.float().mean()) ** 2 + (cols.float() - cols.float().mean()) ** 2
    i = int(d.argmin())
    return int(rows[i]), int(cols[i])


def _palette(meta: RunMeta) -> np.ndarray:
    return np.asarray(meta.make_task().palette(), np.float32).reshape(-1, 3) / 255


def pixel_score(
    model: nn.Module,
    meta: RunMeta,
    image: torch.Tensor,
    pixel: tuple[int, int] | None = None,
    target: int | None = None,
) -> Explained:
    """The logit of a segment model's predicted class (or class `target`) at `pixel` (row, column of the model's
    input; default: `largest_object_pixel` of the predicted mask, else the centre)."""
    shown, plain = _outputs(model, meta, image)
    mask = shown[0].argmax(0)
    h, w = mask.shape
    if pixel is None:
        pixel = largest_object_pixel(mask)
        how = "near the centre of the largest predicted object" if pixel else "the centre: no object predicted"
        pixel = pixel or (h // 2, w // 2)
    else:
        how = "chosen"
        if not (0 <= pixel[0] < h and 0 <= pixel[1] < w):
            raise ValueError(
                f"--pixel {pixel[0]},{pixel[1]} is outside the model's {h}×{w} input: rows 0–{h - 1}, "
                f"columns 0–{w - 1} (the image is read at the model's input size)"
            )
    r, c = pixel
    pred = int(mask[r, c])
    cls = pred if target is None else target
    probs = shown[0, :, r, c].softmax(0)
    name = meta.classes[cls]
    text = (
        f"pixel row {r}, column {c} ({how}; predicted {meta.classes[pred]} {float(probs[pred]):.0%}): its {name} logit"
    )
    text += _tta_note(meta, float(plain[0, :, r, c].softmax(0)[cls]))
    colours = _palette(meta)
    overlay = np.where((mask > 0).numpy()[..., None], colours[mask.numpy()], np.nan)
    legend = [(meta.classes[i], colours[i]) for i in sorted(set(mask.flatten().tolist()) - {0})]
    return Explained(lambda out: out[:, cls, r, c], text, pixel=pixel, overlay=overlay, legend=legend, local=True)


def check_choice(task: str, detection: int | None, pixel: tuple[int, int] | None) -> None:
    """A detection or pixel chosen for a model of another task is refused in one line."""
    if detection is not None and task != "detect":
        raise ValueError(f"--detection picks one of a detect model's objects; this is a {task} model")
    if pixel is not None and task != "segment":
        raise ValueError(f"--pixel picks a pixel of a segment model's mask; this is a {task} model")


def task_score(
    model: nn.Module,
    meta: RunMeta,
    image: torch.Tensor,
    detection: int | None = None,
    pixel: tuple[int, int] | None = None,
    target: int | None = None,
) -> Explained:
    """The score to explain for a localize, detect or segment model's `image`; an option its task does not take
    is refused in one line."""
    task = meta.task
    check_choice(task, detection, pixel)
    if task == "detect":
        if target is not None:
            raise ValueError("--target: a detection's class comes with it; choose the detection with --detection K")
        return detection_score(model, meta, image, detection)
    if task == "localize":
        return localization_score(model, meta, image, target)
    if task == "segment":
        return pixel_score(model, meta, image, pixel, target)
    raise ValueError(f"task_score explains {', '.join(TASKS)} models; this is a {task} model")


def _mark(ax, e: Explained, text: bool = True) -> None:
    """The explained box (with its caption) or pixel (a ring with a cross) drawn on `ax`."""
    if e.box is not None:
        x1, y1, x2, y2 = e.box
        ax.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, ec=e.colour, lw=2))
        if text:  # above the box, or inside it where the box touches the top of the image
            inside = y1 < 0.1 * max(ax.get_ylim())
            at = (x1 + 1, y1 + 1) if inside else (x1 - 0.5, y1 - 0.5)
            kw = {"color": "white", "fontsize": 8, "bbox": {"fc": e.colour, "ec": "none", "pad": 1}}
            ax.text(*at, e.label, va="top" if inside else "bottom", **kw)
    if e.pixel is not None:
        r, c = e.pixel
        ax.plot([c], [r], marker="o", ms=11, mfc="none", mec="white", mew=2)
        ax.plot([c], [r], marker="+", ms=11, color="black", mew=1.5)


def plot_task_saliency(
    image: np.ndarray, explained: Explained, heats: dict[str, np.ndarray], path: str | Path, title: str = ""
) -> Path:
    """One row per method: the prediction (the box, or the mask with the pixel), the heatmap with a colour bar, and
    the heatmap blended over the image with the box or pixel marked; `title` and the explained line above."""
    rows = len(heats)
    fig = figure((9.0, 2.9 * rows + 0.9))
    axes = fig.subplots(rows, 3, squeeze=False)
    gray = image.mean(2) if image.ndim == 3 else image
    for (method, heat), (a_in, a_heat, a_mix) in zip(heats.items(), axes, strict=True):
        show(a_in, image)
        if explained.overlay is not None:
            a_in.imshow(explained.overlay, alpha=0.55, interpolation="nearest")
        _mark(a_in, explained)
        a_in.set_ylabel(method)
        im = show(a_heat, heat, cmap="inferno", vmin=0, vmax=1)
        _mark(a_heat, explained, text=False)
        fig.colorbar(im, ax=a_heat, shrink=0.85, label="saliency (0–1)")
        show(a_mix, image if image.shape[-1] == 3 else gray)
        a_mix.imshow(heat, cmap="inferno", vmin=0, vmax=1, alpha=0.5, interpolation="bilinear")
        _mark(a_mix, explained, text=False)
    axes[0, 0].set_title("prediction" if explained.overlay is not None else "image and box")
    axes[0, 1].set_title("saliency")
    axes[0, 2].set_title("blended over the image")
    if explained.legend:
        handles = [Line2D([], [], ls="", marker="s", ms=8, color=c, label=n) for n, c in explained.legend]
        axes[-1, 0].legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=2, fontsize=8)
    head = "\n".join(textwrap.wrap("explained: " + explained.text, 100))
    fig.suptitle(f"{title}\n{head}" if title else head, fontsize=9)
    return save(fig, path)
