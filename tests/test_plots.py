"""Figures are built with matplotlib's object API: PNGs are written, the backend and pyplot's state are untouched."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.explain.edges import apply_edge_filters, plot_edges, to_gray
from cnnlab.explain.saliency import plot_saliency
from cnnlab.plots import epoch_ticks, plot_confusion, plot_history, plot_lr_find, plot_pr_curves

SRC = str(Path(__file__).resolve().parents[1] / "src")

# imports the plotting modules, draws one figure of each kind, then reports matplotlib's state
DRAW = r"""
import json, sys
import matplotlib
import numpy as np
import torch
import cnnlab.explain, cnnlab.plots
from cnnlab.explain.edges import apply_edge_filters, plot_edges, to_gray
from cnnlab.explain.filters import plot_filters
out = sys.argv[1]
cnnlab.plots.plot_history([{"epoch": 1, "loss": 1.0, "accuracy": 0.5}, {"epoch": 2, "loss": 0.5, "accuracy": 0.8}],
                          f"{out}/history.png")
cnnlab.plots.plot_confusion(np.array([[5, 1], [2, 7]]), ["a", "b"], f"{out}/confusion.png")
image = to_gray(torch.randint(0, 256, (1, 12, 12), dtype=torch.uint8))
plot_edges(image, apply_edge_filters(image), f"{out}/edges.png")
plot_filters(np.random.default_rng(0).random((4, 1, 5, 5)), f"{out}/filters.png")
chosen = dict.__getitem__(matplotlib.rcParams, "backend") is not matplotlib.rcsetup._auto_backend_sentinel
backend = matplotlib.get_backend()
import matplotlib.pyplot as plt
print(json.dumps({"backend": backend, "chosen": chosen, "fignums": plt.get_fignums()}))
"""


def _draw(tmp_path: Path, backend: str | None) -> dict:
    """Run DRAW in a true subprocess: matplotlib's backend is chosen once per process, so whether importing cnnlab
    and drawing chose one (or kept the one MPLBACKEND set) can only be seen in a fresh interpreter."""
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    if backend is not None:
        env["MPLBACKEND"] = backend
    proc = subprocess.run(
        [sys.executable, "-c", DRAW, str(tmp_path)], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["svg", "pdf"])
def test_plotting_keeps_the_backend_that_was_set(tmp_path, backend):
    """A true subprocess (see `_draw`): MPLBACKEND set before matplotlib is imported."""
    state = _draw(tmp_path, backend)
    assert state == {"backend": backend, "chosen": True, "fignums": []}
    for name in ("history", "confusion", "edges", "filters"):
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_plotting_does_not_choose_a_backend(tmp_path):
    """A true subprocess (see `_draw`): a backend is chosen once per process."""
    # MPLBACKEND unset: matplotlib picks a backend itself only when one is first needed (inline in a notebook);
    # importing cnnlab and drawing must leave that choice open, and register no figure with pyplot
    state = _draw(tmp_path, None)
    assert not state["chosen"] and state["fignums"] == []


@pytest.mark.slow
def test_plots_write_pngs_of_the_figure_size(tmp_path):
    history = [
        {"epoch": e, "loss": 1 / e, "accuracy": 1 - 1 / (e + 1), "val_loss": 1.1 / e, "val_accuracy": 1 - 1.2 / (e + 1)}
        for e in range(1, 6)
    ]
    with Image.open(plot_history(history, tmp_path / "h.png", "title")) as im:
        assert im.size == (1100, 440)  # 10 × 4 inches at 110 dpi
    with Image.open(plot_confusion(np.eye(3, dtype=int) * 4, list("abc"), tmp_path / "c.png")) as im:
        assert im.size == (660, 550)  # (5 + 1) × 5 inches
    lrs = np.logspace(-5, 0, 50)
    losses = 2 - np.tanh(np.log10(lrs) + 3)
    assert plot_lr_find(lrs, losses, losses, 1e-3, tmp_path / "lr.png").stat().st_size > 0
    image = to_gray(torch.randint(0, 256, (1, 16, 16), dtype=torch.uint8))
    with Image.open(plot_edges(image, apply_edge_filters(image), tmp_path / "sub" / "e.png")) as im:
        assert im.size == (810, 558)  # 3 columns of 3 × 6.2 inches at 90 dpi
    heat = np.random.default_rng(0).random((16, 16))
    png = plot_saliency(np.zeros((16, 16, 1)), {"gradient": heat, "gradcam": heat}, tmp_path / "s.png", "t")
    assert np.asarray(Image.open(png)).std() > 0  # something is drawn


def test_long_titles_wrap_to_the_figure():
    from cnnlab.plots import wrap_title

    name = "CL16k3-BN-CL32k3-BN-MP4-CL32k3-BN-CL64k3-BN-MP4-CL64k3-BN-CL128k3-BN-MP4-GAP-FC10"
    title = wrap_title(f"{name} on fashion-mnist (test): accuracy 0.9393", 6)
    lines = title.splitlines()
    assert 1 < len(lines) <= 3 and all(len(line) <= 60 for line in lines)
    assert title.replace("\n", "").replace(" ", "") == f"{name}onfashion-mnist(test):accuracy0.9393"
    assert len(wrap_title("x" * 1000, 6).splitlines()) == 3 and wrap_title("short", 6) == "short"


def test_confusion_png_with_a_long_model_name(tmp_path):
    name = "CL16k3-BN-CL32k3-BN-MP4-CL32k3-BN-CL64k3-BN-MP4-CL64k3-BN-CL128k3-BN-MP4-GAP-FC10"
    png = plot_confusion(
        np.eye(10, dtype=int) * 9,
        [f"class {i}" for i in range(10)],
        tmp_path / "c.png",
        f"{name} on fashion-mnist (test): accuracy 0.9393",
    )
    with Image.open(png) as im:
        top = np.asarray(im.convert("L"))[:60]
    assert (top < 128).any(axis=1).sum() > 20  # the title takes more than one line of dark pixels


def test_history_legend_notes_label_smoothing(tmp_path):
    history = [{"epoch": e, "loss": 1 / e, "accuracy": 0.5, "val_loss": 0.9 / e, "val_accuracy": 0.6} for e in (1, 2)]
    with Image.open(plot_history(history, tmp_path / "a.png")) as im:
        plain = np.asarray(im.convert("L"))
    with Image.open(plot_history(history, tmp_path / "b.png", loss_note="includes label smoothing 0.1")) as im:
        noted = np.asarray(im.convert("L"))
    assert plain.shape == noted.shape and (plain != noted).sum() > 200  # the legend's note is drawn


def test_lr_find_plot_stops_where_the_loss_diverges():
    from cnnlab.plots import lr_find_view
    from cnnlab.train.lr_find import smoothed

    lrs = np.logspace(-7, 1, 100)
    # exploding: falls, then rises steeply and turns inf
    losses = np.where(lrs < 1e-2, 2.3 - 0.2 * np.log10(lrs / 1e-7), 1.3 + 40 * (lrs - 1e-2))
    losses[95:] = np.inf
    smooth = smoothed(losses)
    end, (low, high) = lr_find_view(lrs, losses, smooth)
    assert lrs[end - 1] < 10 and np.isfinite(losses[:end]).all()
    assert smooth[end - 1] <= 4 * smooth[:end].min() and smooth[end] > smooth[:end].min()  # stops as it rises
    assert low <= losses[:end].min() and high >= losses[:end].max()  # the raw curve is not clipped
    # plateauing (Adam on a classifier): back near ln(10) with spikes, never 4× the minimum; the view ends where
    # the smoothed loss has climbed back half its fall, before lr = 10, and the spike beyond is not drawn
    rng = np.random.default_rng(0)
    losses = np.where(lrs < 3e-3, 2.4 - 0.25 * np.log10(lrs / 1e-7) / 4.5, 1.2 + 0.6 * np.log10(lrs / 3e-3))
    losses = losses + rng.normal(0, 0.05, 100)
    losses[95] = 44.0
    smooth = smoothed(losses)
    assert smooth.max() < 4 * smooth.min()
    end, (low, high) = lr_find_view(lrs, losses, smooth)
    assert end < 95 and lrs[end - 1] < 10 and high >= losses[:end].max() and high < 10
    flat = np.full(30, 1.0)
    assert lr_find_view(lrs[:30], flat, flat)[0] == 30


def test_augment_figure_names_classes_and_sides(tmp_path):
    from cnnlab.plots import plot_augment

    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (5, 1, 28, 28), dtype=np.uint8)
    png = plot_augment(x, 255 - x, np.array([0, 1, 2, 1, 0]), ["boot", "bag", "shirt"], tmp_path / "a.png", "title")
    with Image.open(png) as im:
        assert im.size == (660, round((2 * 1.45 + 0.7) * 110))  # 3 × 2 tiles; the 6th is empty
    rgb = rng.integers(0, 255, (2, 3, 32, 32), dtype=np.uint8)
    assert plot_augment(rgb, rgb, np.array([0, 1]), ["a", "b"], tmp_path / "rgb.png").stat().st_size > 0


def test_pr_curves_skip_classes_without_objects(tmp_path):
    curves = [np.linspace(1, 0, 101).tolist(), None, [1.0] * 101]  # class b had no objects: no curve, no legend row
    png = plot_pr_curves(curves, ["a", "b", "c"], tmp_path / "pr.png", "detect (test): map 0.5")
    with Image.open(png) as im:
        assert im.size[0] > 500 and np.asarray(im.convert("L")).min() < 100
    assert plot_pr_curves([None], ["a"], tmp_path / "none.png").exists()  # a split without objects still draws


def test_epoch_ticks_are_whole_numbers_and_never_crowd():
    # a 3-minute budget run: 14 whole epochs and a last one cut short at 14.088 (its labels once read "1.002.00…")
    ticks, labels = epoch_ticks([*map(float, range(1, 15)), 14.088])
    assert labels == [str(e) for e in range(1, 15)] and ticks[-1] == 14.0
    # a 15-minute budget run: the partial epoch is most of one, and its label still ran into "18"
    ticks, labels = epoch_ticks([*map(float, range(1, 19)), 18.865])
    assert labels == [str(e) for e in range(1, 19)] and ticks[-1] == 18.0
    assert epoch_ticks([0.916]) == ([0.916], ["0.916"])  # a 30 s run: its only, partial epoch
    ticks, labels = epoch_ticks([float(e) for e in range(1, 41)])  # past 20: ten evenly spread
    assert len(ticks) == 10 and labels[0] == "1" and labels[-1] == "40"
