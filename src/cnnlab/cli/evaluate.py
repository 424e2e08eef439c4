"""`cnnlab evaluate` (accuracy, per-class metrics, confusion matrix of a run — and a task's own metrics, such as
localization's mean IoU or segmentation's mIoU) and `cnnlab predict` (image files; a box task's box drawn with --out,
a segmentation's mask written)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cnnlab.cli._common import (
    add_run_data_flags,
    add_threads_flag,
    check_out,
    count,
    open_run_data,
    print_notes,
    use_threads,
)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from cnnlab.deploy.engines import open_classifier
    from cnnlab.evaluate import evaluate
    from cnnlab.io import resolve_model_path

    threads = use_threads(args)
    classifier = open_classifier(args.run, args.device, args.precision, args.tta, threads=threads)
    figure = figure_name(classifier.meta.task)
    if args.out:
        check_out(Path(args.out) / f"{figure}.png", args.run, classifier.meta, args.data, args.data_dir)
    data = open_run_data(args, classifier.meta)
    split = data.split(args.split)
    result = evaluate(classifier, split, log=lambda line: print(line, file=sys.stderr, flush=True))
    path, meta = Path(args.run), classifier.meta
    onnx, task = meta.export is not None, meta.make_task()
    main = f"{task.main_metric} {result[task.main_metric]:.4f}"
    title = f"{meta.model}{' (ONNX)' if onnx else ''} on {data.splits.name} ({args.split}): {main}"
    png = path.with_name(f"{path.stem}.{figure}.png") if onnx else resolve_model_path(path).parent / f"{figure}.png"
    return report_evaluation(args, result, list(meta.classes), title, png, task.report(result))


def figure_name(task: str) -> str:
    """The figure evaluate draws for a model of `task`: detection's precision–recall curves, else the confusion
    matrix."""
    return "pr_curve" if task == "detect" else "confusion"


def report_evaluation(
    args: argparse.Namespace, result: dict, classes: list[str], title: str, png: Path, text: str | None = None
) -> int:
    """Print the report (`text`, default the classification report; JSON with --json), then draw the confusion
    matrix (detection: the precision–recall curves) at `png` (in --out when given). The report comes first: a folder that cannot take the plot must not
    cost the user the numbers."""
    from cnnlab.evaluate import format_report
    from cnnlab.plots import plot_confusion, plot_pr_curves

    if not args.json:
        print(text if text is not None else format_report(result, classes), flush=True)
    folder = Path(args.out) if args.out else png.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if "pr_curves" in result:
            written = plot_pr_curves(result["pr_curves"], classes, folder / png.name, title)
        else:
            written = plot_confusion(result["confusion"], classes, folder / png.name, title)
    except OSError as e:
        written = None
        print(
            f"warning: {png.name} not written in {folder} ({e.strerror or e}); "
            "pass --out DIR to write the plot elsewhere",
            file=sys.stderr,
        )
    if args.json:
        key = "pr_curve_png" if "pr_curves" in result else "confusion_png"
        print(json.dumps({**result, key: str(written) if written else None}, indent=2))
    elif written:
        print(f"\n{'precision–recall curves' if 'pr_curves' in result else 'confusion matrix'} plot: {written}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from cnnlab.deploy.engines import open_classifier
    from cnnlab.predict import draw_predictions, predict_files

    threads = use_threads(args)
    classifier = open_classifier(
        args.run, args.device, threads=threads, input_size=args.input, mean=args.mean, std=args.std
    )
    if args.out:
        check_out(args.out, args.run, classifier.meta, files=tuple(args.images), folder=True)
    results = predict_files(classifier, args.images, args.top)
    task = classifier.meta.make_task()
    code = print_predictions(args, results, task.describe, task.json)
    if args.out:
        written = draw_predictions(classifier.meta, results, args.out)
        print(f"drawn: {len(written)} PNG(s) in {args.out}", file=sys.stderr)
    return code


def print_predictions(args: argparse.Namespace, results: list[dict], describe, as_json=lambda r: r) -> int:
    """One line per image (its prediction, by the task's `describe`: the top classes with probabilities, and a
    box task's box; conversion notes on stderr), or JSON with --json (what the task's `json` keeps)."""
    if args.json:
        print(json.dumps([as_json(r) for r in results], indent=2))
        return 0
    for r in results:
        print_notes(r["notes"])
        print(f"{r['file']}: {describe(r)}")
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser("evaluate", help="accuracy, per-class metrics and confusion matrix of a run")
    p.add_argument("run", help="run folder, model file or .onnx file")
    add_run_data_flags(p, split_help="which split to evaluate on (default: test)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    p.add_argument(
        "--precision", default=None, help="auto, fp32 or bf16 (default: the precision the model was trained with)"
    )
    p.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="flip test-time augmentation on / off (default: as the run was trained)",
    )
    p.add_argument(
        "--json", action="store_true", help="print the metrics, most-confused pairs and confusion matrix as JSON"
    )
    p.add_argument("--out", help="folder for confusion.png (detection: pr_curve.png) (default: the run folder)")
    add_threads_flag(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="top classes for image files")
    p.add_argument("run", help="run folder, model file or .onnx file")
    p.add_argument("images", nargs="+", help="image files (converted to the model's mode and size, with a note)")
    p.add_argument("--top", type=count, default=3, help="classes to show per image, most probable first (default: 3)")
    p.add_argument("--input", help="C,H,W of a foreign .onnx classifier (one without cnnlab's metadata)")
    p.add_argument("--mean", help="per-channel mean (0–1 scale) for a foreign .onnx classifier, e.g. 0.5,0.5,0.5")
    p.add_argument("--std", help="per-channel std (0–1 scale) for a foreign .onnx classifier")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--out", help="folder to write each image with its prediction drawn (<name>.pred.png)")
    add_threads_flag(p)
    p.set_defaults(func=cmd_predict)
