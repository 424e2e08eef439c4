"""`cnnlab train`, `cnnlab lr-find` and `cnnlab augment`. The training flags are built from the TrainConfig fields
(name, type, default and help), so an option is defined once, in cnnlab/train/config.py."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from cnnlab.cli._common import check_out, count, print_notes

# CNNLAB_QUICK=1 (set by tests/test_readme.py, which runs the README's commands): training is capped to a smoke
# test of the same command, so a documented command can be run in seconds
QUICK_ENV = "CNNLAB_QUICK"
QUICK_CAPS = {"epochs": 1, "max_train_samples": 2000, "time_limit": "3s"}

# the settings that change what a learning-rate range test measures: data, model, optimizer (without its LR,
# which the test sweeps, nor a schedule), batch, loss, augmentation and execution; epochs, schedules, early
# stopping, checkpoints and evaluation do not apply
LR_FIND_FIELDS = (
    "data",
    "data_dir",
    "val_split",
    "image_size",
    "mode",
    "strict",
    "model",
    "task",
    "init",
    "optimizer",
    "momentum",
    "nesterov",
    "weight_decay",
    "decay_all",
    "grad_clip",
    "batch_size",
    "accumulate",
    "label_smoothing",
    "augment",
    "seed",
    "device",
    "precision",
    "compile",
    "out",
)
LR_FIND_HELP = {"out": "folder to write lr_find.png in (default: the current folder)"}


def _flag_type(f):
    """argparse `type=` for TrainConfig field `f`: the config's own coercer (named for argparse's messages)."""
    from cnnlab.train.config import coerce, kind_name

    def parse(text: str):
        return coerce(f, text)

    parse.__name__ = kind_name(f)  # "invalid int value: 'x'"
    return parse


def add_config_flags(p: argparse.ArgumentParser, names: tuple[str, ...] | None = None, helps: dict | None = None):
    """--recipe, --config, --model-arg and one flag per TrainConfig field in `names` (default: all of them)."""
    import dataclasses

    from cnnlab.train.config import TrainConfig, help_text, kind_name

    p.add_argument(
        "--recipe", help="a named set of settings shipped with cnnlab (fast, course); --config and flags override it"
    )
    p.add_argument("--config", help="YAML, TOML or JSON file of settings; flags override it")
    p.add_argument(
        "--model-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra model constructor argument (repeatable), e.g. drop_rate=0.3",
    )
    p.add_argument(
        "--task-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an argument of the task (repeatable), e.g. grid=4 for localize's or detect's head, decoder=fcn for segment's",
    )
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    for name in names or tuple(fields):
        if name in ("model_args", "task_args"):  # --model-arg, --task-arg above
            continue
        f = fields[name]
        flag = "--" + name.replace("_", "-")
        help_ = ((helps or {}).get(name) or help_text(f)).replace("%", "%%")
        if kind_name(f) == "bool":
            p.add_argument(flag, action="store_true", default=None, help=help_)
        else:
            p.add_argument(flag, type=_flag_type(f), default=None, help=help_)


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _recipe_for_this_machine(name: str, asked: dict) -> dict:
    """The recipe's settings, with its variant for the precision this run will use (e.g. `when_fp32`)."""
    from cnnlab.recipes import read_recipe, recipe_variants

    if not recipe_variants(name):
        return read_recipe(name)
    from cnnlab.runtime import resolve_device, resolve_precision

    base = read_recipe(name)
    settings = {**base, **asked}
    precision = resolve_precision(settings.get("precision", "auto"), resolve_device(settings.get("device", "auto")))
    values = read_recipe(name, precision)
    changed = {k: v for k, v in values.items() if base.get(k) != v and k not in asked}
    if changed:
        what = ", ".join(f"{k} {v}" for k, v in changed.items())
        print(f"recipe {name}: its {precision} variant ({what}), for a run in {precision} on this machine")
    return values


def _train_values(args: argparse.Namespace) -> dict:
    """TrainConfig values: the recipe, then the --config file, then the flags given on the command line."""
    import dataclasses

    from cnnlab.files import regular_file
    from cnnlab.train.config import TrainConfig, read_config_file

    if args.config and Path(args.config).is_dir():
        raise ValueError(f"--config {args.config} is a folder; give a YAML, TOML or JSON file")
    values = read_config_file(regular_file(args.config, "config file")) if args.config else {}
    recipe = getattr(args, "recipe", None) or values.pop("recipe", None)
    asked = dict(values)  # what the user set (config file, flags), as opposed to the recipe's settings
    for f in dataclasses.fields(TrainConfig):
        v = getattr(args, f.name, None)  # None: not given (or not a flag of this verb)
        if v is not None and f.name not in ("model_args", "task_args"):
            asked[f.name] = v
    values = {**(_recipe_for_this_machine(recipe, asked) if recipe else {}), **asked}
    if values.get("time_budget") is not None and asked.get("epochs") is None:
        values.pop("epochs", None)  # a recipe's epoch count yields to the budget; the user's own --epochs caps it
    elif asked.get("epochs") is not None and asked.get("time_budget") is None:
        values.pop("time_budget", None)  # and a recipe's budget (`best`: 15m) yields to the user's --epochs
    for flag, key in (("model_arg", "model_args"), ("task_arg", "task_args")):
        if getattr(args, flag, None):
            given = dict(values.get(key) or {})
            for item in getattr(args, flag):
                name, sep, val = item.partition("=")
                if not sep:
                    raise ValueError(f"--{flag.replace('_', '-')} expects KEY=VALUE, got '{item}'")
                given[name] = _parse_value(val)
            values[key] = given
    return values


def quick_mode() -> bool:
    """Whether $CNNLAB_QUICK asks for capped training (anything but '', '0', 'no', 'false', 'off')."""
    return os.environ.get(QUICK_ENV, "").strip().lower() not in ("", "0", "no", "false", "off")


def apply_quick_caps(values: dict, resume: bool = False) -> dict:
    """`values` with training capped for CNNLAB_QUICK: one epoch, the first 2,000 training images, 3 s of training
    (whichever ends first; a resume keeps its data, so only the epochs and the time are capped there)."""

    out = dict(values)
    out["epochs"] = min(int(out.get("epochs") or QUICK_CAPS["epochs"]), QUICK_CAPS["epochs"])
    out["time_limit"] = QUICK_CAPS["time_limit"]
    if not resume:
        given = out.get("max_train_samples")
        out["max_train_samples"] = (
            min(int(given), QUICK_CAPS["max_train_samples"]) if given else QUICK_CAPS["max_train_samples"]
        )
    return out


# torchrun's own log lines ("E1206 09:26:26.509000 3765 torch/distributed/elastic/…"; the path is relative to the
# working folder when torch is installed below it, e.g. ".venv/lib/python3.11/site-packages/torch/distributed/…")
_TORCHRUN_LOG = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ \S*torch/distributed/")


def launch_torchrun(nproc: int, argv: list[str]) -> int:
    """`cnnlab train --nproc N …` → `torchrun --standalone --nproc-per-node N -m cnnlab train …` (one node).

    The processes' output is passed on; torchrun's own report of a failed process (its log lines, a traceback of
    its agent and the ChildFailedError table) is not: the first process that fails says what happened in one
    line, and the other processes' error lines (the same, or "another process stopped") are left out."""
    if nproc < 1:
        raise ValueError(f"--nproc must be ≥ 1, got {nproc}")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "cnnlab",
        "train",
        *argv,
    ]
    with subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, bufsize=1) as job:
        errors = _relay(job.stderr, sys.stderr)
        code = job.wait()
    if code != 0 and not errors:
        print(f"cnnlab train: error: a training process ended with exit code {code} (torchrun)", file=sys.stderr)
    return 0 if code == 0 else 2 if errors else code


def _relay(lines, out) -> list[str]:
    """Copy the processes' stderr to `out`, without torchrun's failure report; returns the error lines copied."""
    errors: list[str] = []
    report = False  # torchrun's report of a failed process: everything after its "failed (exitcode …)" line
    for line in lines:
        if report or _TORCHRUN_LOG.match(line):
            report = report or "failed (exitcode" in line
            continue
        if set(line.strip()) <= {"*"} or line.startswith("Setting OMP_NUM_THREADS environment variable"):
            continue  # torchrun's banner (and blank lines)
        if "error:" in line:
            if errors:
                continue  # one line says what stopped the run: the other ranks' are the same or its consequence
            errors.append(line)
        out.write(line)
        out.flush()
    return errors


def _without_nproc(argv: list[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out


def cmd_train(args: argparse.Namespace) -> int:
    from cnnlab.run.folder import resume_config
    from cnnlab.run.train import train_run
    from cnnlab.runtime import process_seconds, reuse_freed_memory
    from cnnlab.train import distributed
    from cnnlab.train.config import TrainConfig

    if args.nproc is not None and "RANK" not in os.environ:  # launch torchrun, which starts this verb N times
        argv = args.argv[args.argv.index("train") + 1 :]
        return launch_torchrun(args.nproc, _without_nproc(argv))
    reuse_freed_memory()  # each step's buffers come back from malloc, not as fresh pages to fault in (1.2× a step)
    values = _train_values(args)
    if quick_mode():
        values = apply_quick_caps(values, resume=bool(args.resume))
        if os.environ.get("RANK", "0") == "0":  # under torchrun the group is not up yet: rank 0 prints
            print(
                f"quick mode ({QUICK_ENV}): training capped to {values['epochs']} epoch, {values['time_limit']}"
                + (f", the first {values['max_train_samples']:,} training images" if not args.resume else "")
            )
    if not args.resume:  # a cnnlab source names its model
        from cnnlab.train.transfer import with_source_model

        values = with_source_model(values)
    try:  # a time budget counts from this process's start: start-up is part of the time given
        if args.resume:
            train_run(resume_config(args.resume, values), resume=args.resume, clock=process_seconds)
        else:
            train_run(TrainConfig.from_dict(values), clock=process_seconds)
    except distributed.DistributedError as e:
        print(f"cnnlab train: error: {e}", file=sys.stderr)
        return 3
    finally:
        distributed.teardown()
    return 0


def cmd_lr_find(args: argparse.Namespace) -> int:
    from cnnlab.run.lr_find import lr_find
    from cnnlab.train.config import TrainConfig

    values = _train_values(args)
    out = values.pop("out", None) or "."
    check_out(Path(out) / "lr_find.png", data=values.get("data", "fashion-mnist"), data_dir=values.get("data_dir"))
    result = lr_find(TrainConfig.from_dict(values), args.min_lr, args.max_lr, args.steps, out)
    print(
        f"suggested learning rate: {result['suggested_lr']:.3g} (steepest fall of the smoothed loss; "
        f"{len(result['losses'])} steps from {args.min_lr:g})"
    )
    print(f"plot: {result['png']}")
    return 0


MAX_AUGMENT_TILES = 256  # more tiles than this make a figure nobody can read


def cmd_augment(args: argparse.Namespace) -> int:
    from cnnlab.data import load_dataset
    from cnnlab.data.augment import AUGMENTS, augment_samples
    from cnnlab.plots import plot_augment

    if args.list:
        for name, (default, what) in AUGMENTS.items():
            print(f"{name + '=' + format(default, 'g'):<16}{what}")
        return 0
    if not 1 <= args.n <= MAX_AUGMENT_TILES:
        raise ValueError(f"--n must be 1–{MAX_AUGMENT_TILES} (samples shown in one figure), got {args.n}")
    out = Path(args.out or f"augment-{args.data.split(':')[-1].rstrip('/').split('/')[-1]}.png")
    check_out(out, data=args.data, data_dir=args.data_dir)
    splits = load_dataset(args.data, args.data_dir, 0, args.seed, image_size=args.image_size)
    if args.n > len(splits.train):
        print_notes(
            [
                f"--n {args.n} is more than the {len(splits.train)} training samples of {splits.name}; "
                f"showing all {len(splits.train)}"
            ]
        )
    originals, augmented, labels, spec = augment_samples(splits.train, args.augment, args.n, args.seed)
    plot_augment(originals, augmented, labels, splits.classes, out, f"{splits.name}, --augment {args.augment}")
    print(f"{len(labels)} samples of {splits.name}: original left, augmented right ({spec}) → {out}")
    return 0


def _train_flags(p: argparse.ArgumentParser) -> None:
    add_config_flags(p)
    p.add_argument("--resume", metavar="RUN", help="continue the run in this folder from its last checkpoint")
    p.add_argument(
        "--nproc",
        type=int,
        metavar="N",
        help="data-parallel training in N processes on this machine (starts torchrun; one per GPU, or "
        "CPU processes with gloo); --batch-size stays the global batch",
    )


def _lr_find_flags(p: argparse.ArgumentParser) -> None:
    add_config_flags(p, LR_FIND_FIELDS, LR_FIND_HELP)
    p.add_argument("--min-lr", type=float, default=1e-7, help="LR of the first step (default: 1e-7)")
    p.add_argument("--max-lr", type=float, default=10.0, help="LR of the last step (default: 10)")
    p.add_argument("--steps", type=int, default=100, help="steps from --min-lr to --max-lr (default: 100)")


def add_parsers(sub) -> None:
    # the TrainConfig flags are added when the verb is used (see VerbParser): other verbs need not import it
    p = sub.add_parser("train", help="train a model and write a run folder", populate=_train_flags)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "lr-find",
        help="learning-rate range test: loss against LR (lr_find.png) and a suggested LR",
        populate=_lr_find_flags,
    )
    p.set_defaults(func=cmd_lr_find)

    p = sub.add_parser("augment", help="a PNG grid of augmented training samples, to see what an --augment spec does")
    p.add_argument("--data", default="fashion-mnist", help="dataset name or folder:PATH / npz:PATH / csv:PATH")
    p.add_argument("--data-dir", help="folder holding the dataset's official files (searched first)")
    p.add_argument(
        "--augment",
        default="flip,translate=2,rotate=10,scale=0.1,erase=0.5",
        help="augmentation spec (default: %(default)s); --list shows the names",
    )
    p.add_argument("--n", type=int, default=16, help=f"samples to show, 1–{MAX_AUGMENT_TILES} (default: 16)")
    p.add_argument(
        "--image-size", type=count, default=None, help="resize the images to this size first (a folder of mixed sizes)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the sample choice and the augmentation (default: 0)")
    p.add_argument("--out", help="PNG file to write (default: augment-<data>.png)")
    p.add_argument("--list", action="store_true", help="list the augmentations and what their value means")
    p.set_defaults(func=cmd_augment)
