"""What the task benchmarks on generated scenes share (localize.py, detect.py, segment.py): their command-line
flags, one run through `cnnlab train`'s own path (`run.train.train_run`) with the row it appends to a results file,
a picture of the trained model's predictions on the first test scenes (drawn by the task's own `draw`), and the
Markdown table of those rows (the task's columns between the common ones)."""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image

import cnnlab
from benchmarks import ROOT
from cnnlab.files import atomic_write
from cnnlab.infer import TorchClassifier
from cnnlab.io.model_file import load_model
from cnnlab.run.splits import run_splits
from cnnlab.run.train import train_run
from cnnlab.runtime import hardware_info
from cnnlab.tasks.base import Task
from cnnlab.train.config import TrainConfig


def parser(doc: str, name: str, model: str, n: int, work: str) -> argparse.ArgumentParser:
    """The flags every scene benchmark takes (a script adds its own)."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--model", default=model)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument(
        "--time-budget", default=None, help="e.g. 10m: the whole run within it (--epochs is then the most it runs)"
    )
    p.add_argument("--n", type=int, default=n, help="training scenes (test: n / 5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the scenes and of the run")
    p.add_argument("--work", default=work, help="folder for the scenes and the run folders")
    p.add_argument("--note", default="", help="a word on the run kept with its row, e.g. 'smoke run'")
    p.add_argument("--report", action="store_true", help="print the table of the results so far")
    p.add_argument(
        "--example",
        default=str(ROOT / "docs" / "images" / f"{name}_example.png"),
        help="where to write the picture of the predictions on the first test scenes ('' for none)",
    )
    return p


GAP = 8  # white pixels between the panels of `example`, so that black scenes do not run together
Panels = Callable[[Task, torch.Tensor, torch.Tensor, dict], list[Image.Image]]


def prediction_only(task: Task, image: torch.Tensor, target: torch.Tensor, prediction: dict) -> list[Image.Image]:
    """The panels of one scene: the prediction drawn on it (the default of `example`)."""
    return [task.draw(image, prediction)]


def example(run: Path, out: Path, count: int = 4, panels: Panels = prediction_only) -> Path:
    """The trained run's predictions on its first `count` test scenes, one row of `panels(task, image, target,
    prediction)` per scene (one panel each: the scenes side by side), written atomically as a PNG to `out`."""
    model, meta = load_model(run)
    test = run_splits(run).splits.test
    images, targets = test.images[:count], test.labels[:count]
    task = meta.make_task()
    predictions = task.decode(TorchClassifier(model, meta, device="cpu").logits(images))
    rows = [panels(task, *scene) for scene in zip(images, targets, predictions, strict=True)]
    if all(len(r) == 1 for r in rows):
        rows = [[r[0] for r in rows]]
    width = max(sum(im.width for im in r) + GAP * (len(r) - 1) for r in rows)
    height = sum(max(im.height for im in r) for r in rows) + GAP * (len(rows) - 1)
    sheet = Image.new("RGB", (width, height), "white")
    top = 0
    for r in rows:
        left = 0
        for im in r:
            sheet.paste(im, (left, top))
            left += im.width + GAP
        top += max(im.height for im in r) + GAP
    return atomic_write(out, lambda tmp: sheet.save(tmp, format="PNG"))


def train(
    args: argparse.Namespace, data: str, task: str, recipe: dict, panels: Panels = prediction_only, **options
) -> tuple[dict, float]:
    """One `cnnlab train` run on `data` (a yolo:/coco:/masks: source) for `task`: (metrics.json's dict, wall s);
    then, unless `args.example` is empty, the picture of its predictions (`example`, one row of `panels` a scene)."""
    out = Path(args.work) / f"run-{time.strftime('%Y%m%d-%H%M%S')}"
    cfg = TrainConfig(
        data=data,
        task=task,
        model=args.model,
        epochs=args.epochs,
        time_budget=args.time_budget,
        seed=args.seed,
        out=str(out),
        verbose=1,
        **recipe,
        **options,
    )
    started = time.perf_counter()
    result = train_run(cfg)
    wall = time.perf_counter() - started
    if args.example:
        print(f"example predictions: {example(result.out, Path(args.example), panels=panels)}")
    return result.metrics, wall


def record(path: Path, args: argparse.Namespace, m: dict, wall: float, recipe: dict, results: dict) -> dict:
    """The row of a run — what was run, the task's `results`, times, machine and versions — appended to `path`."""
    row = {
        "model": args.model,
        "epochs": args.epochs,
        "time_budget": args.time_budget,
        "epochs_trained": m["epochs"],
        "steps": m["steps"],
        "scenes": args.n,  # made; the run validates on 10 % of them and trains on the rest
        "seed": args.seed,
        **results,
        "train_seconds": m["train_seconds"],
        "wall_seconds": round(wall, 1),
        "threads": torch.get_num_threads(),
        "cpu": hardware_info(torch.device("cpu"))["cpu"],
        "precision": m["precision"],
        "versions": {"cnnlab": cnnlab.__version__, "torch": torch.__version__, "python": platform.python_version()},
        "config": {**recipe, "model": args.model},
        "note": args.note,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = json.loads(path.read_text()) if path.exists() else []
    path.write_text(json.dumps([*rows, row], indent=2) + "\n")
    return row


def table(path: Path, columns: list[str], cells: Callable[[dict], list[str]]) -> str:
    """The Markdown table of the rows in `path`: model, epochs (trained, and the budget), scenes and seed, then the
    task's `columns` (`cells(row)`), then times, machine and note."""
    rows = json.loads(path.read_text()) if path.exists() else []
    head = ["model", "epochs", "scenes (train + val)", "seed", *columns, "train s", "wall s", "CPU, threads, precision"]
    lines = ["| " + " | ".join([*head, "note"]) + " |", "|" + "---|" * (len(head) + 1)]
    for r in rows:
        epochs = f"{r.get('epochs_trained', r['epochs']):g}" + (
            f" ({r['time_budget']})" if r.get("time_budget") else ""
        )
        common = [f"`{r['model']}`", epochs, f"{r['scenes']:,}", str(r["seed"])]
        machine = [
            f"{r['train_seconds']:,.0f}",
            f"{r['wall_seconds']:,.0f}",
            f"{r['cpu']}, {r['threads']}, {r['precision']}",
        ]
        lines.append("| " + " | ".join([*common, *cells(r), *machine, r.get("note") or ""]) + " |")
    return "\n".join(lines)
