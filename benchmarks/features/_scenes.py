"""What the task benchmarks on generated scenes share (localize.py, detect.py, segment.py): their command-line
flags, one run through `cnnlab train`'s own path (`run.train.train_run`) with the row it appends to a results file,
and the Markdown table of those rows (the task's columns between the common ones)."""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

import cnnlab
from cnnlab.run.train import train_run
from cnnlab.runtime import hardware_info
from cnnlab.train.config import TrainConfig


def parser(doc: str, model: str, n: int, work: str) -> argparse.ArgumentParser:
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
    return p


def train(args: argparse.Namespace, data: str, task: str, recipe: dict, **options) -> tuple[dict, float]:
    """One `cnnlab train` run on `data` (a yolo:/coco:/masks: source) for `task`: (metrics.json's dict, wall s)."""
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
    metrics = train_run(cfg).metrics
    return metrics, time.perf_counter() - started


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
