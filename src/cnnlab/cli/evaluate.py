"""`cnnlab evaluate` (accuracy, per-class metrics, confusion matrix of a run) and `cnnlab predict` (image files)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cnnlab.cli._common import count, print_notes


def cmd_evaluate(args: argparse.Namespace) -> int:
    if args.run.lower().endswith(".onnx"):  # an exported file runs through ONNX Runtime
        from cnnlab.cli.deploy import cmd_evaluate_onnx

        return cmd_evaluate_onnx(args)
    from cnnlab.evaluate import evaluate_model
    from cnnlab.io import load_model, resolve_model_path

    model, meta = load_model(args.run)
    data_name, data = load_split(args, meta)
    result = evaluate_model(
        model,
        data,
        meta,
        args.device,
        args.precision,
        args.tta,
        log=lambda line: print(line, file=sys.stderr, flush=True),
    )
    title = f"{meta['model']} on {data_name} ({args.split}): accuracy {result['accuracy']:.4f}"
    return report_evaluation(
        args, result, meta["classes"], title, resolve_model_path(args.run).parent / "confusion.png"
    )


def load_split(args: argparse.Namespace, meta: dict):
    """(data set name, the split `--split` asks for), read in the model's mode and size."""
    from cnnlab.data import load_dataset
    from cnnlab.data.images import channels_mode

    c, h, w = meta["input_size"]
    data_name = args.data or meta.get("dataset")
    if not data_name:
        raise ValueError(f"{args.run} does not record its data set; give it with --data")
    splits = load_dataset(data_name, args.data_dir, args.val_split, args.seed, channels_mode(c), (h, w), args.strict)
    data = getattr(splits, args.split)
    if data is None:
        raise ValueError(f"{data_name} has no {args.split} split")
    return data_name, data


def report_evaluation(args: argparse.Namespace, result: dict, classes: list[str], title: str, png: Path) -> int:
    """Print the report (JSON with --json), then draw the confusion matrix at `png` (in --out when given). The
    report comes first: a folder that cannot take the plot must not cost the user the numbers."""
    from cnnlab.evaluate import format_report
    from cnnlab.plots import plot_confusion

    if not args.json:
        print(format_report(result, classes), flush=True)
    folder = Path(args.out) if args.out else png.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        written = plot_confusion(result["confusion"], classes, folder / png.name, title)
    except OSError as e:
        written = None
        print(
            f"warning: {png.name} not written in {folder} ({e.strerror or e}); "
            "pass --out DIR to write the plot elsewhere",
            file=sys.stderr,
        )
    if args.json:
        print(json.dumps({**result, "confusion_png": str(written) if written else None}, indent=2))
    elif written:
        print(f"\nconfusion matrix plot: {written}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    if args.run.lower().endswith(".onnx"):  # an exported file runs through ONNX Runtime
        from cnnlab.cli.deploy import cmd_predict_onnx

        return cmd_predict_onnx(args)
    from cnnlab.io import load_model
    from cnnlab.predict import predict_files

    model, meta = load_model(args.run)
    return print_predictions(args, predict_files(model, meta, args.images, args.top, args.device))


def print_predictions(args: argparse.Namespace, results: list[dict]) -> int:
    """One line per image (its top classes with probabilities; conversion notes on stderr), or JSON with --json."""
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for r in results:
        print_notes(r["notes"])
        best = ", ".join(f"{t['class']} {t['probability']:.1%}" for t in r["top"])
        print(f"{r['file']}: {best}")
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser("evaluate", help="accuracy, per-class metrics and confusion matrix of a run")
    p.add_argument("run", help="run folder, model file or .onnx file")
    p.add_argument("--data", help="dataset (default: the one the model was trained on)")
    p.add_argument("--data-dir", help="folder holding the dataset's official files (searched first)")
    p.add_argument(
        "--split", choices=("train", "val", "test"), default="test", help="which split to evaluate on (default: test)"
    )
    p.add_argument(
        "--val-split",
        type=int,
        default=None,
        help="validation samples carved from train; must match training to evaluate on 'val' / 'train' "
        "(default: as in training, 5000 for the 60k sets)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the validation split; must match training to evaluate on 'val' / 'train' (default: 0)",
    )
    p.add_argument(
        "--strict", action="store_true", help="fail on unreadable image files instead of skipping them with a warning"
    )
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
    p.add_argument("--out", help="folder for confusion.png (default: the run folder)")
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
    p.set_defaults(func=cmd_predict)
