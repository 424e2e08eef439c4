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
    "model": "model name (see `cnnlab summary --list`) or course notation, e.g. CL32-MP4-CL64-MP4-FC512-FC10",
    "init": "re-initialize the weights: glorot_uniform, glorot_normal, he_uniform, he_normal or torch",
    "epochs": "passes over the training set",
    "batch_size": "samples per batch (one step sees batch-size × accumulate samples)",
    "optimizer": "gd (full-batch gradient descent: one step per pass), sgd, adam, adamw or rmsprop",
    "lr": "learning rate per step (the schedule's peak)",
    "momentum": "momentum for gd / sgd / rmsprop; unset: 0.9, or 0 for gd",
    "nesterov": "Nesterov momentum for sgd",
    "weight_decay": "L2 penalty (decoupled for adamw); biases and norm parameters are exempt",
    "decay_all": "apply weight decay to biases and norm parameters too",
    "grad_clip": "clip the gradient to this global L2 norm before each step",
    "accumulate": "batches whose gradients are summed into one step",
    "schedule": "constant, linear (ε_k = (1−k/τ)ε_0 + (k/τ)ε_τ), step, cosine, onecycle or plateau",
    "schedule_unit": "the schedule counts optimizer steps (step) or epochs (epoch)",
    "warmup": "linear warm-up before the schedule, in schedule units",
    "lr_end": "final LR: linear ε_τ (default lr/100), cosine floor (default 0), onecycle end",
    "decay_length": "τ: length of the linear decay / cosine in schedule units (default: the rest of the run)",
    "step_size": "step schedule: multiply the LR by --gamma every this many units (default: a third of the run)",
    "gamma": "LR factor of the step and plateau schedules",
    "plateau_patience": "plateau schedule: epochs without val_loss improvement before the LR drops",
    "label_smoothing": "label smoothing of the cross-entropy targets",
    "augment": "training-batch augmentation, e.g. flip,translate=2,rotate=10,scale=0.1,erase=0.5,cutout=8,mixup=0.2,"
    "cutmix=1 (see `cnnlab augment`)",
    "tta": "flip test-time augmentation: the final evaluation (and evaluate / predict on the run) averages the logits "
    "of each image and its mirror",
    "patience": "stop after this many epochs without val_loss improvement and keep the best weights",
    "seed": "random seed for initialization, validation split and data order",
    "device": "auto, cpu or cuda",
    "precision": "auto (bf16 where the hardware does it fast), fp32 or bf16",
    "compile": "torch.compile the training forward pass: off, default, reduce-overhead (CUDA graphs on a GPU) or "
    "max-autotune; on a CPU it was slower for the course's CNN, so measure first",
    "out": "run folder to create (default runs/<model>-<data>-<time>)",
    "overwrite": "reuse an existing run folder",
    "checkpoint_every": "also write the resume checkpoint every this many steps (it is written every epoch anyway)",
    "time_limit": "stop training after this long (e.g. 90, 60s, 5m, 1h), then evaluate and save as usual",
    "tensorboard": "write TensorBoard event files to <run>/tensorboard (pip install 'cnnlab[tensorboard]')",
    "verbose": "0 silences the progress bar; 2 also logs each checkpoint",
}


def _add_train_args(p: argparse.ArgumentParser) -> None:
    from cnnlab.train.config import TrainConfig

    p.add_argument(
        "--recipe", help="a named set of settings shipped with cnnlab (fast); --config and flags override it"
    )
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


def _train_values(args: argparse.Namespace) -> dict:
    """TrainConfig values from the --config file, then the flags given on the command line."""
    from cnnlab.recipes import read_recipe
    from cnnlab.train.config import TrainConfig, read_config_file

    # precedence: recipe < config file < flags
    values = read_config_file(args.config) if args.config else {}
    recipe = getattr(args, "recipe", None) or values.pop("recipe", None)
    if recipe:
        values = {**read_recipe(recipe), **values}
    for f in dataclasses.fields(TrainConfig):
        v = getattr(args, f.name, None)
        if v is not None and f.name != "model_args":
            values[f.name] = v
    if args.val_split is not None and args.val_split >= 1:
        values["val_split"] = int(args.val_split)
    if args.model_arg:
        model_args = dict(values.get("model_args") or {})
        for item in args.model_arg:
            key, sep, val = item.partition("=")
            if not sep:
                raise ValueError(f"--model-arg expects KEY=VALUE, got '{item}'")
            model_args[key] = _parse_value(val)
        values["model_args"] = model_args
    return values


def cmd_train(args: argparse.Namespace) -> int:
    from cnnlab.pipeline import resume_config, train_run
    from cnnlab.train.config import TrainConfig

    values = _train_values(args)
    if args.resume:
        train_run(resume_config(args.resume, values), resume=args.resume)
        return 0
    train_run(TrainConfig.from_dict(values))
    return 0


def cmd_lr_find(args: argparse.Namespace) -> int:
    from cnnlab.pipeline import lr_find
    from cnnlab.train.config import TrainConfig

    values = _train_values(args)
    out = values.pop("out", None) or "."
    result = lr_find(TrainConfig.from_dict(values), args.min_lr, args.max_lr, args.steps, out)
    print(f"suggested learning rate: {result['suggested_lr']:.3g} (steepest fall of the smoothed loss; "
          f"{len(result['losses'])} steps from {args.min_lr:g})")  # fmt: skip
    print(f"plot: {result['png']}")
    return 0


def cmd_augment(args: argparse.Namespace) -> int:
    from cnnlab.data import load_dataset
    from cnnlab.data.augment import AUGMENTS, augment_grid
    from cnnlab.data.images import tensor_to_image

    if args.list:
        for name, (default, what) in AUGMENTS.items():
            print(f"{name + '=' + format(default, 'g'):<16}{what}")
        return 0
    splits = load_dataset(args.data, args.data_dir, 0, args.seed)
    grid, spec = augment_grid(splits.train, args.augment, args.n, args.seed)
    out = Path(args.out or f"augment-{splits.name}.png")
    tensor_to_image(grid).save(out)
    print(f"{args.n} samples of {splits.name}: original left, augmented right ({spec}) → {out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from cnnlab.data import load_dataset
    from cnnlab.data.images import channels_mode
    from cnnlab.evaluate import evaluate_model, format_report
    from cnnlab.io import load_model, resolve_model_path
    from cnnlab.plots import plot_confusion

    model, meta = load_model(args.run)
    c, h, w = meta["input_size"]
    data_name = args.data or meta.get("dataset")
    splits = load_dataset(data_name, args.data_dir, args.val_split, args.seed, channels_mode(c),
                          (h, w), args.strict)  # fmt: skip
    data = getattr(splits, args.split)
    if data is None:
        raise ValueError(f"{data_name} has no {args.split} split")
    result = evaluate_model(model, data, meta, args.device, args.precision, args.tta)
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
    from cnnlab.models.notation import to_notation

    if args.list or not args.model:
        print("\n".join(list_models()))
        return 0
    size = _parse_input(args.input) if args.input else None
    if Path(args.model).exists():
        from cnnlab.io import load_model

        model, meta = load_model(args.model)
        size, name = size or tuple(meta["input_size"]), meta["model"]
    else:
        kwargs = {"img_size": size[1]} if size else {}
        model = create_model(args.model, num_classes=args.classes, in_chans=size[0] if size else 1, **kwargs)
        size, name = size or tuple(model.default_cfg["input_size"]), args.model
    if args.notation:  # the string alone, or why the model has none
        try:
            print(to_notation(model, size, strict=True))
        except ValueError as e:
            raise ValueError(f"{name} cannot be written in the course notation: {e}") from None
        return 0
    info = summary(model, size, args.depth)
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


_EXPLAIN_USAGE = """cnnlab explain RUN METHOD [options]   (RUN: run folder or model file)
       cnnlab explain edges IMAGE"""


def _int_list(text: str) -> list[int]:
    """'3', '0,4,7' or '0-7' → a list of ints."""
    out: list[int] = []
    for part in text.split(","):
        lo, sep, hi = part.partition("-")
        if not (lo.strip().isdigit() and (not sep or hi.strip().isdigit())):
            raise ValueError(f"expected indices such as 3, 0,4,7 or 0-7, got '{text}'")
        out += list(range(int(lo), int(hi) + 1)) if sep else [int(lo)]
    return out


def _explain_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cnnlab explain RUN", description="What the network learned, as PNGs.")
    sub = parser.add_subparsers(dest="method", required=True, metavar="METHOD")

    def method(name: str, help_: str, data: bool = False) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("--out", help="PNG to write (default: explain-<method>.png in the run folder)")
        if data:
            p.add_argument("--data", help="dataset (default: the one the model was trained on)")
            p.add_argument("--data-dir")
            p.add_argument("--split", choices=("train", "val", "test"), default="test")
        return p

    method("layers", "list the model's layers (module names) with output shapes")
    p = method("filters", "the learned kernels of a conv layer, normalised per kernel")
    p.add_argument("--layer", help="conv layer (default: the first)")
    p.add_argument("--max", type=int, default=64, help="show at most this many filters (default: 64)")
    p = method("featuremaps", "a layer's activation maps for one image")
    p.add_argument("--image", required=True)
    p.add_argument("--layer", help="module name (default: the first conv); see `layers`")
    p.add_argument("--max", type=int, default=64, help="show at most this many maps (default: 64)")
    p = method("saliency", "which pixels the class score depends on, blended over the image")
    p.add_argument("--image", required=True)
    p.add_argument("--target", help="class name or index (default: the predicted class)")
    p.add_argument("--method", dest="kinds", default="gradient",
                   help="gradient, smoothgrad, integrated-gradients, gradcam, a comma list, or all (default: gradient)")  # fmt: skip
    p = method("maximize", "synthesise the input that maximises channels of a layer or class logits")
    p.add_argument("--layer", help="module name whose channels (or neurons) to maximise")
    p.add_argument("--channel", type=_int_list, help="channel(s): 3, 0,4,7 or 0-7 (default: 0-7)")
    p.add_argument("--class", dest="classes", type=_int_list, help="class logit(s) instead of a layer, e.g. 0-9")
    p.add_argument("--steps", type=int, default=256)
    p.add_argument("--lr", type=float, default=0.1, help="step per iteration in normalised input units")
    p.add_argument("--seed", type=int, default=0)
    p = method("patches", "the dataset crops (receptive fields) that activate a channel most", data=True)
    p.add_argument("--layer", required=True)
    p.add_argument("--channel", type=int, required=True)
    p.add_argument("--top", type=int, default=16)
    p.add_argument("--n", type=int, default=10000, help="search the first N images of the split")
    p = method("embedding", "t-SNE of the penultimate-layer codes, coloured by class", data=True)
    p.add_argument("--n", type=int, default=2000, help="images drawn at random from the split")
    p.add_argument("--thumbnails", action="store_true", help="draw the images themselves (first 300)")
    p.add_argument("--seed", type=int, default=0)
    p = method("top-losses", "the images the model gets most confidently wrong", data=True)
    p.add_argument("--top", type=int, default=16)
    p = method("edges", "the course's fixed edge filters by cross-correlation (needs no model)")
    p.add_argument("image")
    return parser


def _explain_data(args: argparse.Namespace, meta: dict):
    from cnnlab.data import load_dataset
    from cnnlab.data.images import channels_mode

    c, h, w = meta["input_size"]
    name = args.data or meta.get("dataset")
    splits = load_dataset(name, args.data_dir, None, 0, channels_mode(c), (h, w))
    data = getattr(splits, args.split)
    if data is None:
        raise ValueError(f"{name} has no {args.split} split")
    return data


def _explain_image(path: str, meta: dict):
    from cnnlab.explain import read_image

    image, notes = read_image(path, meta)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    return image


def cmd_explain(args: argparse.Namespace) -> int:
    from cnnlab import explain as ex

    tokens = list(args.args)
    if not tokens or tokens[0] in ("-h", "--help"):
        _explain_parser().print_help()
        return 0 if tokens else 2
    run = None if tokens[0] == "edges" else tokens.pop(0)  # `explain edges IMAGE` needs no model
    opts = _explain_parser().parse_args(tokens)
    if opts.method == "edges":
        from cnnlab.data import load_image

        image, notes = load_image(opts.image, "L")
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        gray = ex.edges.to_gray(image)
        print(ex.correlation_vs_convolution())
        png = ex.edges.plot_edges(gray, ex.apply_edge_filters(gray), opts.out or "edges.png")
        print(f"\nedges plot: {png}")
        return 0

    from cnnlab.io import load_model, resolve_model_path

    model, meta = load_model(run)
    out = Path(opts.out or resolve_model_path(run).parent / f"explain-{opts.method}.png")
    name = meta["model"]
    if opts.method == "layers":
        print(ex.format_layers(ex.list_layers(model, tuple(meta["input_size"]))))
        return 0
    if opts.method == "filters":
        layer, kernels = ex.conv_filters(model, opts.layer)
        png = ex.plot_filters(kernels, out, f"{name} {layer}", max_filters=opts.max)
    elif opts.method == "featuremaps":
        image = _explain_image(opts.image, meta)
        layer, maps = ex.feature_maps(model, meta, image, opts.layer)
        pixels = image.permute(1, 2, 0).float().div(255).numpy()
        png = ex.plot_feature_maps(maps, pixels, out, f"{name} {layer}", opts.max)
    elif opts.method == "saliency":
        methods = ex.METHODS if opts.kinds == "all" else opts.kinds.split(",")
        image = _explain_image(opts.image, meta)
        target = ex.class_index(opts.target, meta["classes"])
        heats = {}
        for m in methods:
            heat, targets, probs = ex.saliency(model, meta, ex.to_input(image[None], meta), target, m.strip())
            heats[m.strip()] = heat[0]
        pred = int(probs[0].argmax())
        title = (f"{name}: predicted {meta['classes'][pred]} ({probs[0, pred]:.1%}), "
                 f"saliency of class {meta['classes'][int(targets[0])]}")  # fmt: skip
        pixels = image.permute(1, 2, 0).float().div(255).numpy()
        png = ex.plot_saliency(pixels, heats, out, title)
    elif opts.method == "maximize":
        if opts.classes is not None and (opts.layer or opts.channel):
            raise ValueError("give either --layer/--channel or --class, not both")
        if opts.classes is None and not opts.layer:
            raise ValueError("maximize needs --layer NAME [--channel K] or --class K")
        index = opts.classes if opts.classes is not None else (opts.channel or list(range(8)))
        layer = None if opts.classes is not None else opts.layer
        result = ex.maximize(model, meta, index, layer, steps=opts.steps, lr=opts.lr, seed=opts.seed)
        print(ex.format_change(result))
        what = "class logits" if layer is None else f"{layer} channels"
        png = ex.plot_maximized(result, out, f"{name}: inputs maximising {what} (activation start → end)")
    elif opts.method == "patches":
        data = _explain_data(opts, meta)
        images, labels = data.images[: opts.n], data.labels[: opts.n]
        patches = ex.top_patches(model, meta, images, opts.layer, opts.channel, opts.top)
        t, b, l, r = patches[0].box
        title = (f"{name} {opts.layer} channel {opts.channel}: top {len(patches)} of {len(images)} images\n"
                 f"crops = the unit's receptive field ({b - t}×{r - l} for the first)")  # fmt: skip
        png = ex.plot_patches(patches, out, title, meta["classes"], labels)
    elif opts.method == "embedding":
        data = _explain_data(opts, meta)
        emb = ex.embedding(model, meta, data, opts.n, opts.seed)
        thumbs = data.images[emb.indices] if opts.thumbnails else None
        title = f"{name}: t-SNE of {emb.codes.shape[1]}-D CNN codes, {len(emb.points)} {opts.split} images"
        png = ex.plot_embedding(emb, meta["classes"], out, title, thumbs)
    else:  # top-losses
        data = _explain_data(opts, meta)
        result = ex.top_losses(model, meta, data, opts.top)
        png = ex.plot_top_losses(result, data.images, meta["classes"], out)
    print(png)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cnnlab", description="CNNs for image classification, end to end.")
    sub = parser.add_subparsers(dest="verb", required=True)

    p = sub.add_parser("train", help="train a model and write a run folder")
    _add_train_args(p)
    p.add_argument("--resume", metavar="RUN", help="continue the run in this folder from its last checkpoint")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("lr-find", help="learning-rate range test: loss against LR (lr_find.png) and a suggested LR")
    _add_train_args(p)
    p.add_argument("--min-lr", type=float, default=1e-7, help="LR of the first step (default: 1e-7)")
    p.add_argument("--max-lr", type=float, default=10.0, help="LR of the last step (default: 10)")
    p.add_argument("--steps", type=int, default=100, help="steps from --min-lr to --max-lr (default: 100)")
    p.set_defaults(func=cmd_lr_find)

    p = sub.add_parser("augment", help="a PNG grid of augmented training samples, to see what an --augment spec does")
    p.add_argument("--data", default="fashion-mnist", help="dataset name or folder:PATH / npz:PATH / csv:PATH")
    p.add_argument("--data-dir")
    p.add_argument("--augment", default="flip,translate=2,rotate=10,scale=0.1,erase=0.5",
                   help="augmentation spec (default: %(default)s); --list shows the names")  # fmt: skip
    p.add_argument("--n", type=int, default=16, help="samples to show (default: 16)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="PNG file to write (default: augment-<data>.png)")
    p.add_argument("--list", action="store_true", help="list the augmentations and what their value means")
    p.set_defaults(func=cmd_augment)

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
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                   help="flip test-time augmentation on / off (default: as the run was trained)")  # fmt: skip
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="top classes for image files")
    p.add_argument("run", help="run folder or model file")
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--top", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("summary", help="per-layer shapes, parameters, MACs and receptive fields of a model")
    p.add_argument("model", nargs="?", help="model name, course notation (CL32-MP4-FC10), run folder or model file")
    p.add_argument("--input", help="input size C×H×W, e.g. 1x28x28 (default: the model's)")
    p.add_argument("--classes", type=int, default=10, help="output classes (default: 10)")
    p.add_argument("--depth", type=int, help="show blocks nested deeper than N as one row (1 = top-level modules)")
    p.add_argument("--notation", action="store_true", help="print the model in the course notation, if it has one")
    p.add_argument("--list", action="store_true", help="list registered models")
    p.add_argument("--json", action="store_true", help="rows and totals as JSON")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("datasets", help="list known datasets and where they are; `datasets get NAME` fetches one")
    p.add_argument("action", nargs="?", choices=("list", "get"), default="list")
    p.add_argument("name", nargs="?")
    p.add_argument("--data-dir")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("explain", help="what the network learned: filters, feature maps, saliency, … as PNGs",
                       usage=_EXPLAIN_USAGE, description="Methods: layers, filters, featuremaps, saliency, maximize, "
                       "patches, embedding, top-losses, edges. `cnnlab explain RUN -h` describes them.")  # fmt: skip
    p.add_argument("args", nargs=argparse.REMAINDER, help="RUN METHOD [options], or edges IMAGE")
    p.set_defaults(func=cmd_explain)
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
