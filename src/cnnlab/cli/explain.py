"""`cnnlab explain RUN METHOD [options]` and `cnnlab explain edges IMAGE`: what the network learned, as PNGs.

METHODS maps each method name to its help, its flags, the tasks it knows and a small handler; the handler returns
the PNG it wrote (printed as the last line) or None when it printed its own output.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab.cli._common import (
    add_run_data_flags,
    check_out,
    count,
    open_run_data,
    print_notes,
    status,
)

_USAGE = """cnnlab explain RUN METHOD [options]   (RUN: run folder or model file)
       cnnlab explain edges IMAGE"""


@dataclass
class Context:
    """What a handler works on: the explain module, and the model of RUN (none for `edges`)."""

    ex: Any
    model: Any = None
    meta: dict | None = None
    out: Path | None = None  # --out, or default_name(opts) in the run folder

    @property
    def name(self) -> str:
        return self.meta.model


ALL_TASKS = ("classify", "localize", "detect", "segment")


@dataclass(frozen=True)
class Method:
    help: str
    run: Callable[[argparse.Namespace, Context], Path | str | None]
    flags: Callable[[argparse.ArgumentParser], None] = lambda p: None
    data: bool = False  # takes --data / --data-dir / --split
    model: bool = True  # needs RUN
    tasks: tuple[str, ...] = ALL_TASKS  # the tasks of the models it explains


MAX_INDICES = 256  # images one figure shows (maximize: one per channel or class)


def _int_list(text: str) -> list[int]:
    """'3', '0,4,7' or '0-7' → a list of ints (at most MAX_INDICES)."""
    out: list[int] = []
    for part in text.split(","):
        lo, sep, hi = part.partition("-")
        if not (lo.strip().isdigit() and (not sep or hi.strip().isdigit())):
            raise argparse.ArgumentTypeError(f"expected indices such as 3, 0,4,7 or 0-7, got '{text}'")
        lo, hi = int(lo), int(hi) if sep else int(lo)
        if hi < lo or len(out) + hi - lo + 1 > MAX_INDICES:
            raise argparse.ArgumentTypeError(
                f"expected at most {MAX_INDICES} indices in increasing ranges, got '{text[:40]}'"
            )
        out += range(lo, hi + 1)
    return out


def _data(opts: argparse.Namespace, c: Context):
    """The split --split of the run's data, as the run was trained on it (or --data)."""
    return open_run_data(opts, c.meta).split(opts.split)


def _image(path: str, c: Context):
    image, notes = c.ex.read_image(path, c.meta)
    print_notes(notes)
    return image


def _pixels(image):
    return image.permute(1, 2, 0).float().div(255).numpy()


def _layers(o, c: Context):
    print(c.ex.format_layers(c.ex.list_layers(c.model, tuple(c.meta.input_size))))


def _filters_flags(p):
    p.add_argument("--layer", help="conv layer (default: the first)")
    p.add_argument("--max", type=count, default=64, help="show at most this many filters (default: 64)")


def _filters(o, c: Context):
    layer, kernels = c.ex.conv_filters(c.model, o.layer)
    return c.ex.plot_filters(kernels, c.out, f"{c.name} {layer}", max_filters=o.max)


def _featuremaps_flags(p):
    p.add_argument("--image", required=True)
    p.add_argument("--layer", help="module name (default: the first conv); see `layers`")
    p.add_argument("--max", type=count, default=64, help="show at most this many maps (default: 64)")


def _featuremaps(o, c: Context):
    image = _image(o.image, c)
    layer, maps = c.ex.feature_maps(c.model, c.meta, image, o.layer)
    return c.ex.plot_feature_maps(maps, _pixels(image), c.out, f"{c.name} {layer}", o.max)


def _pixel(text: str) -> tuple[int, int]:
    """'ROW,COL' → (row, col)."""
    row, sep, col = text.partition(",")
    if not (sep and row.strip().isdigit() and col.strip().isdigit()):
        raise argparse.ArgumentTypeError(f"expected ROW,COL such as 12,20, got '{text[:40]}'")
    return int(row), int(col)


def _saliency_flags(p):
    p.add_argument("--image", required=True)
    p.add_argument(
        "--target", help="class name or index (default: the predicted class; segment: the pixel's predicted class)"
    )
    p.add_argument(
        "--method",
        dest="kinds",
        help="gradient, smoothgrad, integrated-gradients, gradcam, a comma list, or all (default: gradient; "
        "gradcam for localize and detect models)",
    )
    p.add_argument("--layer", help="Grad-CAM's feature map (default: the last conv stage before the final pooling)")
    p.add_argument(
        "--detection", type=int, help="detect: which object of `cnnlab predict`'s list (0 = the best, the default)"
    )
    p.add_argument(
        "--pixel",
        type=_pixel,
        help="segment: ROW,COL of the pixel whose class to explain, in the model's input size "
        "(default: near the centre of the largest predicted object)",
    )


DEFAULT_SALIENCY = {"classify": "gradient", "localize": "gradcam", "detect": "gradcam", "segment": "gradient"}


def _saliency(o, c: Context):
    ex, classes, task = c.ex, c.meta.classes, c.meta.task
    kinds = o.kinds or DEFAULT_SALIENCY[task]
    methods = list(ex.METHODS) if kinds == "all" else [m.strip() for m in kinds.split(",")]
    if o.layer and "gradcam" not in methods:
        raise ValueError("--layer chooses Grad-CAM's feature map: add --method gradcam")
    image = _image(o.image, c)
    target = ex.class_index(o.target, classes)
    x = ex.to_input(image[None], c.meta)
    if task != "classify":
        explained = ex.task_score(c.model, c.meta, image, o.detection, o.pixel, target)
        heats = {
            m: ex.heatmaps(c.model, c.meta, x, explained.score, m, _layer(o, m), explained.local)[0] for m in methods
        }
        print(f"explained: {explained.text}")
        return ex.plot_task_saliency(_pixels(image), explained, heats, c.out, f"{c.name} ({task})")
    ex.task_scores.check_choice(task, o.detection, o.pixel)
    heats = {}
    for m in methods:
        heat, targets, probs = ex.saliency(c.model, c.meta, x, target, m, _layer(o, m))
        heats[m] = heat[0]
    pred = int(probs[0].argmax())
    title = f"{c.name}: predicted {classes[pred]} ({probs[0, pred]:.1%}), saliency of class {classes[int(targets[0])]}"
    return ex.plot_saliency(_pixels(image), heats, c.out, title)


def _layer(o, method: str) -> str | None:
    return o.layer if method == "gradcam" else None


def _maximize_flags(p):
    p.add_argument("--layer", help="module name whose channels (or neurons) to maximise")
    p.add_argument("--channel", type=_int_list, help="channel(s): 3, 0,4,7 or 0-7 (default: 0-7)")
    p.add_argument("--class", dest="classes", type=_int_list, help="class logit(s) instead of a layer, e.g. 0-9")
    p.add_argument("--steps", type=count, default=256)
    p.add_argument("--lr", type=float, default=0.1, help="step per iteration in normalised input units")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--objective",
        choices=("channel", "layer"),
        default="channel",
        help="channel: each image raises one channel (default); layer: DeepDream, the mean square of the whole layer",
    )
    p.add_argument("--image", help="start from this image instead of noise (DeepDream starts from a photo)")


def _maximize(o, c: Context):
    if o.classes is not None and c.meta.task != "classify":
        raise ValueError(
            f"maximize --class raises a classifier's logits; this is a {c.meta.task} model: give --layer NAME "
            "[--channel K] (e.g. one of its head's class maps, head.fc)"
        )
    if o.classes is not None and (o.layer or o.channel):
        raise ValueError("give either --layer/--channel or --class, not both")
    if o.classes is None and not o.layer:
        raise ValueError("maximize needs --layer NAME [--channel K] or --class K")
    if o.objective == "layer" and (o.classes is not None or o.channel):
        raise ValueError("--objective layer raises the whole layer: give --layer alone, without --channel / --class")
    index = o.classes if o.classes is not None else (o.channel or list(range(8)))
    layer = None if o.classes is not None else o.layer
    start = c.ex.to_input(_image(o.image, c)[None], c.meta) if o.image else None
    count = 1 if o.objective == "layer" else len(index)
    start = start.expand(count, -1, -1, -1) if start is not None else None
    kwargs = {"steps": o.steps, "lr": o.lr, "seed": o.seed, "objective": o.objective, "start": start}
    result = c.ex.maximize(c.model, c.meta, index, layer, **kwargs)
    print(c.ex.format_change(result))
    if o.objective == "layer":
        return c.ex.plot_maximized(result, c.out, f"{c.name}: DeepDream on {layer} (mean a², start → end)")
    what = "class logits" if layer is None else f"{layer} channels"
    return c.ex.plot_maximized(result, c.out, f"{c.name}: inputs maximising {what} (activation start → end)")


def _patches_flags(p):
    p.add_argument("--layer", required=True)
    p.add_argument("--channel", type=int, required=True)
    p.add_argument("--top", type=count, default=16)
    p.add_argument("--n", type=count, default=10000, help="search the first N images of the split")


def _patches(o, c: Context):
    data = _data(o, c)
    images, labels = data.images[: o.n], data.labels[: o.n]
    patches = c.ex.top_patches(c.model, c.meta, images, o.layer, o.channel, o.top)
    t, b, l, r = patches[0].box
    title = (
        f"{c.name} {o.layer} channel {o.channel}: top {len(patches)} of {len(images)} images\n"
        f"crops = the unit's receptive field ({b - t}×{r - l} for the first)"
    )
    labels = labels if labels.ndim == 1 else None  # a class per image; boxes and masks are not captions
    return c.ex.plot_patches(patches, c.out, title, c.meta.classes, labels)


def _embedding_flags(p):
    p.add_argument("--n", type=count, default=2000, help="images drawn at random from the split")
    p.add_argument("--thumbnails", action="store_true", help="draw the images themselves (first 300)")
    p.add_argument("--seed", type=int, default=0)


def _embedding(o, c: Context):
    data = _data(o, c)
    emb = c.ex.embedding(c.model, c.meta, data, o.n, o.seed, log=status)
    thumbs = data.images[emb.indices] if o.thumbnails else None
    title = f"{c.name}: t-SNE of {emb.codes.shape[1]}-D CNN codes, {len(emb.points)} {o.split} images"
    status(f"embedding: drawing {len(emb.points):,} points{' and their images' if thumbs is not None else ''} …")
    return c.ex.plot_embedding(emb, c.meta.classes, c.out, title, thumbs)


def _top_losses(o, c: Context):
    data = _data(o, c)
    result = c.ex.top_losses(c.model, c.meta, data, o.top)
    return c.ex.plot_top_losses(result, data.images, c.meta.classes, c.out)


def _edges(o, c: Context):
    from cnnlab.data import load_image

    image, notes = load_image(o.image, "L")
    print_notes(notes)
    gray = c.ex.edges.to_gray(image)
    print(c.ex.correlation_vs_convolution())
    png = c.ex.edges.plot_edges(gray, c.ex.apply_edge_filters(gray), o.out or default_name(o))
    print(f"\nedges plot: {png}")


METHODS: dict[str, Method] = {
    "layers": Method("list the model's layers (module names) with output shapes", _layers),
    "filters": Method("the learned kernels of a conv layer, normalised per kernel", _filters, _filters_flags),
    "featuremaps": Method("a layer's activation maps for one image", _featuremaps, _featuremaps_flags),
    "saliency": Method("which pixels the class score depends on, blended over the image", _saliency, _saliency_flags),
    "maximize": Method(
        "synthesise the input that maximises channels of a layer or class logits", _maximize, _maximize_flags
    ),
    "patches": Method(
        "the dataset crops (receptive fields) that activate a channel most", _patches, _patches_flags, data=True
    ),
    "embedding": Method(
        "t-SNE of the penultimate-layer codes, coloured by class",
        _embedding,
        _embedding_flags,
        data=True,
        tasks=("classify",),
    ),
    "top-losses": Method(
        "the images the model gets most confidently wrong",
        _top_losses,
        lambda p: p.add_argument("--top", type=count, default=16),
        data=True,
        tasks=("classify",),
    ),
    "edges": Method(
        "the course's fixed edge filters by cross-correlation (needs no model)",
        _edges,
        lambda p: p.add_argument("image"),
        model=False,
    ),
}


def default_name(opts: argparse.Namespace) -> str:
    """explain-<method>[-<layer>][-channel<K>][-thumbnails].png: the name says what the picture shows, so a second
    layer or option does not overwrite the first (`filters --layer features.3` → explain-filters-features.3.png)."""
    parts = [opts.method]
    if getattr(opts, "layer", None):
        parts.append(opts.layer)
    if getattr(opts, "detection", None) is not None:
        parts.append(f"detection{opts.detection}")
    if getattr(opts, "pixel", None) is not None:
        parts.append("pixel{}_{}".format(*opts.pixel))
    if opts.method == "patches":
        parts.append(f"channel{opts.channel}")
    if getattr(opts, "objective", "channel") == "layer":
        parts.append("dream")
    if getattr(opts, "thumbnails", False):
        parts.append("thumbnails")
    return "explain-" + "-".join(p.replace("/", "_") for p in parts) + ".png"


def _explain_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cnnlab explain RUN", description="What the network learned, as PNGs.")
    sub = parser.add_subparsers(dest="method", required=True, metavar="METHOD")
    for name, method in METHODS.items():
        p = sub.add_parser(name, help=method.help, description=method.help)
        p.add_argument(
            "--out",
            help="PNG to write (default: explain-<method>[-<layer>].png in the run folder; "
            "explain-edges.png in the current folder for edges)",
        )
        if method.data:
            add_run_data_flags(p, split_help="the split to search (default: test)", resplit=False)
        method.flags(p)
    return parser


def _check_task(name: str, task: str) -> None:
    """A method that does not know the model's task is refused in one line naming the methods that do."""
    if task not in METHODS[name].tasks:
        known = ", ".join(n for n, m in METHODS.items() if m.model and task in m.tasks)
        raise ValueError(
            f"cnnlab explain {name} works on classification models; this is a {task} model "
            f"(explain knows {known} for it)"
        )


def cmd_explain(args: argparse.Namespace) -> int:
    tokens = list(args.args)
    if not tokens or tokens[0] in ("-h", "--help"):
        _explain_parser().print_help()
        return 0 if tokens else 2
    run = None if tokens[0] == "edges" else tokens.pop(0)  # `explain edges IMAGE` needs no model
    opts = _explain_parser().parse_args(tokens)
    opts.run = run
    method = METHODS[opts.method]

    from cnnlab import explain as ex
    from cnnlab.cli._common import use_threads

    use_threads(opts)  # $CNNLAB_THREADS, else measured (explain takes no --threads of its own)

    context = Context(ex)
    if method.model:
        from cnnlab.io import load_model, resolve_model_path

        context.model, context.meta = load_model(run)
        _check_task(opts.method, context.meta.task)
        context.out = Path(opts.out or resolve_model_path(run).parent / default_name(opts))
        image = getattr(opts, "image", None)
        check_out(
            context.out, run, context.meta, getattr(opts, "data", None), getattr(opts, "data_dir", None), (image,)
        )
    elif opts.out:
        check_out(opts.out, files=(opts.image,))
    png = method.run(opts, context)
    if png is not None:
        print(png)
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "explain",
        help="what the network learned: filters, feature maps, saliency, … as PNGs",
        usage=_USAGE,
        description=f"Methods: {', '.join(METHODS)}. `cnnlab explain RUN -h` describes them.",
    )
    p.add_argument("args", nargs=argparse.REMAINDER, help="RUN METHOD [options], or edges IMAGE")
    p.set_defaults(func=cmd_explain)
