"""`cnnlab models` (the registered names), `cnnlab summary` (a model's layers, parameters, MACs, receptive fields)
and `cnnlab datasets` (where each dataset is, `get` to fetch one, `samples` to write a few of its images, `make` to
generate a scene set with boxes)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cnnlab.cli._common import count


def _parse_input(text: str) -> tuple[int, ...]:
    parts = text.lower().replace("×", "x").split("x")
    if len(parts) == 2 and all(p.isdigit() for p in parts):  # C×L: a signal, for a 1-D network (dims=1)
        c, n = (int(p) for p in parts)
        if not (1 <= c <= 16 and 1 <= n <= 1_000_000):
            raise ValueError(f"--input {text}: C must be 1–16 and L 1–1,000,000 samples")
        return c, n
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"--input expects C×H×W such as 1x28x28 (or C×L for a 1-D network), got '{text}'")
    c, h, w = (int(p) for p in parts)
    if not (1 <= c <= 16 and 1 <= h <= 4096 and 1 <= w <= 4096):
        raise ValueError(f"--input {text}: C must be 1–16 and H, W 1–4096 pixels")
    return c, h, w


def _model_args(items: list[str], flag: str = "--model-arg") -> dict:
    """--model-arg (or `flag`) KEY=VALUE pairs (values read as JSON where they parse: act=tanh, dims=1)."""
    from cnnlab.cli.train import _parse_value

    out = {}
    for item in items:
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{flag} expects KEY=VALUE, got '{item}'")
        out[key.replace("-", "_")] = _parse_value(val)
    return out


def cmd_summary(args: argparse.Namespace) -> int:
    from cnnlab.inspect import format_summary, summary
    from cnnlab.models import create_model, list_models
    from cnnlab.models.notation import to_notation

    if args.list or not args.model:
        print("\n".join(list_models()))
        return 0
    size = _parse_input(args.input) if args.input else None
    if Path(args.model).exists():
        from cnnlab.io import load_model

        model, meta = load_model(args.model)
        size, name = size or meta.input_size, meta.model
    else:  # only what the user gave: each family has its own defaults (ImageNet ones: 1000 classes, 3×224×224)
        from cnnlab.models.notation import resolve_notation

        kwargs = {"in_chans": size[0], "img_size": size[1]} if size else {}
        if size and len(size) == 3 and size[1] != size[2] and resolve_notation(args.model) is not None:
            kwargs["img_size"] = size[1:]  # the notation builder sizes its flatten for an H×W input
        if args.classes is not None:
            kwargs["num_classes"] = args.classes
        kwargs.update(_model_args(args.model_arg))
        model = create_model(args.model, **kwargs)
        if size is None and len(model.default_cfg["input_size"]) == 2:  # a 1-D network (dims=1): C×L
            size = tuple(model.default_cfg["input_size"])
        if size is not None and len(size) != len(model.default_cfg["input_size"]):
            want = "C×L (a 1-D network)" if len(model.default_cfg["input_size"]) == 2 else "C×H×W"
            hint = "; for a 1-D network give --model-arg dims=1" if len(size) == 2 else ""
            raise ValueError(f"{args.model} takes inputs of {want}, got --input {args.input}{hint}")
        size, name = size or tuple(model.default_cfg["input_size"]), args.model
        if args.task != "classify":  # the network with the task's head on its features
            from cnnlab.tasks import make_task

            classes = [str(i) for i in range(model.model_args.get("num_classes", 10))]
            task_args = _model_args(args.task_arg, "--task-arg")
            model = make_task(args.task, classes, size, **task_args).build(model)
    if args.notation:  # the string alone, or why the model has none
        try:
            print(to_notation(model, size, strict=True))
        except ValueError as e:
            raise ValueError(f"{name} cannot be written in the course notation: {e}") from None
        return 0
    try:
        info = summary(model, size, args.depth)
    except RuntimeError as e:  # a shape the architecture cannot take (an FC layer sized for a square input, …)
        first = str(e).splitlines()[0]
        raise ValueError(
            f"{name} cannot take a {'×'.join(map(str, size))} input ({first}); cnnlab builds its "
            "fully connected layers for square inputs: give H = W"
        ) from None
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(format_summary(info, f"{name}: input {'×'.join(map(str, size))}"))
    return 0


def _describe(name: str) -> str:
    """The first line of a registered model's docstring, or ''."""
    from cnnlab.models._registry import get_constructor

    doc = (get_constructor(name).__doc__ or "").strip()
    return doc.splitlines()[0].rstrip(".") if doc else ""


def cmd_models(args: argparse.Namespace) -> int:
    from cnnlab.models import list_models

    names = list_models(args.pattern)
    if not names:
        raise ValueError(f"no registered model matches '{args.pattern}'; `cnnlab models` lists them all")
    width = max(map(len, names)) + 2
    for name in names:
        print(f"{name:<{width}}{_describe(name)}".rstrip())
    return 0


def _objects(text: str) -> tuple[int, int]:
    """--objects 1-4 (or 1) → (1, 4)."""
    low, _, high = text.partition("-")
    try:
        return int(low), int(high or low)
    except ValueError:
        raise ValueError(f"--objects wants a count or a range such as 1-4, got '{text}'") from None


def make_scenes(args: argparse.Namespace) -> int:
    """`cnnlab datasets make fashion-scenes …`: a generated scene set in YOLO and COCO formats."""
    from cnnlab.data.scenes import SCENE_SETS, make_scene_set

    if args.name not in SCENE_SETS:
        raise ValueError(f"usage: cnnlab datasets make {{{','.join(SCENE_SETS)}}} [--n N] [--size S] --out DIR")
    from cnnlab.cli._common import check_out

    out = args.out or args.name
    check_out(out, data=SCENE_SETS[args.name], data_dir=args.data_dir, folder=True)
    count, formats = _objects(args.objects), tuple(f.strip() for f in args.format.split(",") if f.strip())
    n = args.n or 1000
    kw = dict(test=args.test, val=args.val, clutter=args.clutter, noise=args.noise, seed=args.seed)
    kw["masks"] = args.masks
    sizes = make_scene_set(args.name, out, n, args.size, count, data_dir=args.data_dir, formats=formats, **kw)
    made = ", ".join(f"{k:,} {split}" for split, k in sizes.items())
    each = "object" if args.objects == "1" else "objects"
    print(f"{args.name}: {made} scenes of {args.size}×{args.size}, {args.objects} {each} each → {out}")
    print(f"formats: {', '.join(formats)}; train with --data yolo:{out} or --data coco:{out}")
    if args.masks:
        print(f"masks: {out}/masks/<split>/; train with --task segment --data masks:{out}")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from cnnlab.data import sources

    if args.action == "make":
        return make_scenes(args)
    if args.action == "samples":
        from cnnlab.data.samples import write_samples

        if not args.name:
            raise ValueError("usage: cnnlab datasets samples NAME [--n 5] [--out DIR]")
        from cnnlab.cli._common import check_out

        n, out = args.n or 5, args.out or "samples"
        check_out(out, data=args.name, data_dir=args.data_dir, folder=True)
        for path, cls, index in write_samples(args.name, n, out, args.data_dir, args.split):
            print(f"{path}  ({cls}, {args.split} image {index})")
        return 0
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
    print("yolo:PATH      images/<split>/ and labels/<split>/*.txt of `class cx cy w h` boxes, classes.txt")
    print("coco:PATH      <split>.json with images, annotations (bbox [x, y, w, h]) and categories")
    print("masks:PATH     images/<split>/ and masks/<split>/*.png of class indices per pixel, classes.txt")
    print("fashion-scenes generated scenes with boxes: `cnnlab datasets make fashion-scenes --out DIR`")
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser("models", help="list the registered models, optionally those matching a pattern")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style pattern, e.g. 'resnet*' (default: all)")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("summary", help="per-layer shapes, parameters, MACs and receptive fields of a model")
    p.add_argument("model", nargs="?", help="model name, course notation (CL32-MP4-FC10), run folder or model file")
    p.add_argument("--input", help="input size C×H×W, e.g. 1x28x28 (default: the model family's own)")
    p.add_argument(
        "--classes", type=count, help="output classes (default: the model family's own, e.g. 1000 for vgg16)"
    )
    p.add_argument("--depth", type=int, help="show blocks nested deeper than N as one row (1 = top-level modules)")
    p.add_argument("--notation", action="store_true", help="print the model in the course notation, if it has one")
    p.add_argument(
        "--model-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a model constructor argument (repeatable), e.g. act=tanh, dims=1, drop_rate=0.3",
    )
    p.add_argument("--list", action="store_true", help="list registered models (as `cnnlab models`)")
    p.add_argument(
        "--task",
        default="classify",
        help="classify (default), localize, detect or segment: the model with that task's head",
    )
    p.add_argument(
        "--task-arg", action="append", default=[], metavar="KEY=VALUE", help="an argument of --task, e.g. decoder=fcn"
    )
    p.add_argument("--json", action="store_true", help="rows and totals as JSON")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser(
        "datasets",
        help="list known datasets and where they are; `datasets get NAME` fetches one, "
        "`datasets samples NAME` writes a few of its test images as PNGs, "
        "`datasets make fashion-scenes` generates scenes with boxes",
    )
    p.add_argument(
        "action",
        nargs="?",
        choices=("list", "get", "samples", "make"),
        default="list",
        help="list (default): where each dataset is; get: fetch NAME; samples: write images of NAME; "
        "make: generate the scene set NAME (fashion-scenes, mnist-scenes) in YOLO and COCO formats",
    )
    p.add_argument("name", nargs="?", help="dataset name, e.g. fashion-mnist (for get and samples)")
    p.add_argument("--data-dir", help="folder holding the dataset's official files (searched first)")
    p.add_argument(
        "--n", type=int, help="samples: how many images, one per class (default: 5); make: training scenes (1000)"
    )
    p.add_argument("--out", help="folder to write in (default: samples for samples, the set's NAME for make)")
    p.add_argument("--size", type=int, default=96, help="make: canvas side in pixels (default: 96)")
    p.add_argument("--objects", default="1-4", help="make: objects per scene, a count or a range (default: 1-4)")
    p.add_argument("--test", type=int, help="make: test scenes, from the test images (default: n / 5)")
    p.add_argument("--val", type=int, default=0, help="make: validation scenes (default: 0, carved when training)")
    p.add_argument("--clutter", type=int, default=0, help="make: faint fragments per scene that are not objects")
    p.add_argument("--noise", type=float, default=0.0, help="make: Gaussian noise, std in 0–255 pixel units")
    p.add_argument("--seed", type=int, default=0, help="make: seed of the whole set (default: 0)")
    p.add_argument("--format", default="yolo,coco", help="make: yolo, coco or both (default: yolo,coco)")
    p.add_argument("--masks", action="store_true", help="make: also write each scene's mask (masks/<split>/*.png)")
    p.add_argument(
        "--split", choices=("train", "test"), default="test", help="samples: split to take them from (default: test)"
    )
    p.set_defaults(func=cmd_datasets)
