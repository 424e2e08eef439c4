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
from cnnlab.plots import plot_confusion, plot_history, plot_lr_find

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
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    if backend is not None:
        env["MPLBACKEND"] = backend
    proc = subprocess.run([sys.executable, "-c", DRAW, str(tmp_path)], capture_output=True, text=True, env=env,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("backend", ["svg", "pdf"])
def test_plotting_keeps_the_backend_that_was_set(tmp_path, backend):
    state = _draw(tmp_path, backend)
    assert state == {"backend": backend, "chosen": True, "fignums": []}
    for name in ("history", "confusion", "edges", "filters"):
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plotting_does_not_choose_a_backend(tmp_path):
    # MPLBACKEND unset: matplotlib picks a backend itself only when one is first needed (inline in a notebook);
    # importing cnnlab and drawing must leave that choice open, and register no figure with pyplot
    state = _draw(tmp_path, None)
    assert not state["chosen"] and state["fignums"] == []


def test_plots_write_pngs_of_the_figure_size(tmp_path):
    history = [{"epoch": e, "loss": 1 / e, "accuracy": 1 - 1 / (e + 1), "val_loss": 1.1 / e,
                "val_accuracy": 1 - 1.2 / (e + 1)} for e in range(1, 6)]  # fmt: skip
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
