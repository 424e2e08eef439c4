"""`cnnlab <verb>`: each verb parses its flags, calls one library function and prints the result."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import warnings
from pathlib import Path

_TRAIN_HELP = {
    "data": "dataset name (fashion-mnist, mnist, cifar10) or folder:PATH, npz:PATH, csv:PATH",
    "data_dir": "folder holding the dataset's official files (searched first)",
    "val_split": "validation samples carved from train: a count, or a fraction < 1 (default 5000 for the 60k sets)",
    "image_size": "resize every image to SIZE×SIZE pixels",
    "mode": "convert images to L (grayscale) or RGB",
    "strict": "fail on unreadable image files instead of skipping them",
    "model": "model name (see `cnnlab summary --list`)",
    "epochs": "passes over the training set",
    "batch_size": "samples per step",
    "optimizer": "sgd, adam, adamw or rmsprop",
    "lr": "learning rate per step",
    "momentum": "momentum for sgd / rmsprop",
    "nesterov": "Nesterov momentum for sgd",
    "weight_decay": "L2 penalty (decoupled for adamw)",
    "label_smoothing": "label smoothing of the cross-entropy targets",
    "patience": "stop after this many epochs without val_loss improvement and keep the best weights",
    "seed": "random seed for initialization, validation split and data order",
    "device": "auto, cpu or cuda",
    "precision": "auto (bf16 where the hardware does it fast), fp32 or bf16",
    "out": "run folder to create (default runs/<model>-<data>-<time>)",
    "overwrite": "reuse an existing run folder",
    "verbose": "0 silences the progress bar",
}


def _add_train_args(p: argparse.ArgumentParser) -> None:
    from cnnlab.train.config import TrainConfig

    p.add_argument("--config", help="YAML, TOML or JSON file of settings; flags override it")
    p.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="extra model constructor argument (repeatable), e.g. drop_rate=0.3")  # fmt: skip
    for f in dataclasses.fields(TrainConfig):
        if f.name == "model_args":
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else None
        help_ = f"{_TRAIN_HELP.get(f.name, '')} (default: {default})"
        if f.type in ("bool", bool):
            p.add_argument(flag, action="store_true", default=None, help=help_)
        else:
            kind = {"int": int, "float": float, "int | None": int, "float | None": float}.get(str(f.type), str)
            p.add_argument(flag, type=kind, default=None, help=help_)


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def cmd_train(args: argparse.Namespace) -> int:
    from cnnlab.train.config import TrainConfig, read_config_file
    from cnnlab.train.run import train_run

    values = read_config_file(args.config) if args.config else {}
    for f in dataclasses.fields(TrainConfig):
        v = getattr(args, f.name, None)
        if v is not None and f.name != "model_args":
            values[f.name] = v
    if args.val_split is not None and args.val_split >= 1:
        values["val_split"] = int(args.val_split)
    model_args = dict(values.get("model_args") or {})
    for item in args.model_arg:
        key, sep, val = item.partition("=")
        if not sep:
            raise ValueError(f"--model-arg expects KEY=VALUE, got '{item}'")
        model_args[key] = _parse_value(val)
    values["model_args"] = model_args
    cfg = TrainConfig.from_dict(values)
    train_run(cfg)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from cnnlab.data import load_dataset
    from cnnlab.evaluate import evaluate_model, format_report
    from cnnlab.io import load_model, resolve_model_path
    from cnnlab.plots import plot_confusion

    model, meta = load_model(args.run)
    c, h, w = meta["input_size"]
    data_name = args.data or meta.get("dataset")
    splits = load_dataset(data_name, args.data_dir, args.val_split, args.seed, "L" if c == 1 else "RGB",
                          (h, w), args.strict)  # fmt: skip
    data = getattr(splits, args.split)
    if data is None:
        raise ValueError(f"{data_name} has no {args.split} split")
    result = evaluate_model(model, data, meta, args.device, args.precision)
    folder = resolve_model_path(args.run).parent
    png = plot_confusion(result["confusion"], meta["classes"], folder / "confusion.png",
                         f"{meta['model']} on {data_name} ({args.split}): accuracy {result['accuracy']:.4f}")  # fmt: skip
    if args.json:
        print(json.dumps({**result, "confusion_png": str(png)}, indent=2))
    else:
        print(format_report(result, meta["classes"]))
        print(f"\nconfusion matrix plot: {png}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from cnnlab.io import load_model
    from cnnlab.predict import predict_files

    model, meta = load_model(args.run)
    results = predict_files(model, meta, args.images, args.top, args.device)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for r in results:
        for note in r["notes"]:
            print(f"note: {note}", file=sys.stderr)
        best = ", ".join(f"{t['class']} {t['probability']:.1%}" for t in r["top"])
        print(f"{r['file']}: {best}")
    return 0


def _parse_input(text: str) -> tuple[int, int, int]:
    parts = text.lower().replace("×", "x").split("x")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"--input expects C×H×W such as 1x28x28, got '{text}'")
    return tuple(int(p) for p in parts)  # type: ignore[return-value]


def cmd_summary(args: argparse.Namespace) -> int:
    from cnnlab.inspect import format_summary, summary
    from cnnlab.models import create_model, list_models

    if args.list or not args.model:
        print("\n".join(list_models()))
        return 0
    if Path(args.model).exists():
        from cnnlab.io import load_model

        model, meta = load_model(args.model)
        size, name = tuple(meta["input_size"]), meta["model"]
    else:
        size = _parse_input(args.input) if args.input else None
        kwargs = {"img_size": size[1]} if size else {}
        model = create_model(args.model, num_classes=args.classes, in_chans=size[0] if size else 1, **kwargs)
        size, name = size or tuple(model.default_cfg["input_size"]), args.model
    info = summary(model, size)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(format_summary(info, f"{name}: input {'×'.join(map(str, size))}"))
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from cnnlab.data import sources

    if args.action == "get":
        if not args.name:
            raise ValueError("usage: cnnlab datasets get NAME")
        folder, how = sources.get(args.name, args.data_dir)
        print(f"{args.name}: {how} → {folder}")
        return 0
    for name, spec in sources.DATASETS.items():
        found = sources.locate(name, args.data_dir)
        print(f"{name:<15}{spec.title}")
        if found:
            print(f"{'':<15}found: {found}")
        else:
            way = f"`{spec.system_hint}` or " if spec.system_hint else ""
            print(f"{'':<15}not found; get it with {way}`cnnlab datasets get {name}`")
    print("folder:PATH    one sub-folder of images per class (optionally under train/, val/, test/)")
    print("npz:PATH       arrays x_train, y_train[, x_test, y_test, class_names]")
    print("csv:PATH       rows of label, pixel values (a file, or a folder with *train*.csv / *test*.csv)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cnnlab", description="CNNs for image classification, end to end.")
    sub = parser.add_subparsers(dest="verb", required=True)

    p = sub.add_parser("train", help="train a model and write a run folder")
    _add_train_args(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="accuracy, per-class metrics and confusion matrix of a run")
    p.add_argument("run", help="run folder or model file")
    p.add_argument("--data", help="dataset (default: the one the model was trained on)")
    p.add_argument("--data-dir")
    p.add_argument("--split", choices=("train", "val", "test"), default="test")
    p.add_argument("--val-split", type=int, default=None, help="must match training to evaluate on 'val'")
    p.add_argument("--seed", type=int, default=0, help="must match training to evaluate on 'val' / 'train'")
    p.add_argument("--strict", action="store_true")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default=None, help="default: the precision the model was trained with")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="top classes for image files")
    p.add_argument("run", help="run folder or model file")
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--top", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("summary", help="per-layer output shapes and parameters of a model")
    p.add_argument("model", nargs="?", help="model name, run folder or model file")
    p.add_argument("--input", help="input size C×H×W, e.g. 1x28x28 (default: the model's)")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--list", action="store_true", help="list registered models")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("datasets", help="list known datasets and where they are; `datasets get NAME` fetches one")
    p.add_argument("action", nargs="?", choices=("list", "get"), default="list")
    p.add_argument("name", nargs="?")
    p.add_argument("--data-dir")
    p.set_defaults(func=cmd_datasets)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.simplefilter("default")
    warnings.formatwarning = lambda msg, cat, *a, **k: f"warning: {msg}\n"
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, FileExistsError, OSError) as e:
        print(f"cnnlab {args.verb}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
