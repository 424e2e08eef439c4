"""`cnnlab lab LESSON`: the lectures' demonstrations (numbers printed, one figure written)."""

from __future__ import annotations

import argparse

from cnnlab.cli._common import count

# cnnlab.lab.LESSONS, without importing torch
LESSONS = (
    "conv",
    "xo",
    "invariance",
    "depth",
    "adversarial",
    "gd",
    "signal",
    "pool",
    "channels",
    "sparse",
    "likelihood",
    "perceptron",
    "standardize",
    "equivariance",
    "batch",
    "advtrain",
    "svm",
    "gabor",
    "detect",
    "segment",
    "dream",
)


def cmd_lab(args: argparse.Namespace) -> int:
    from cnnlab.lab import LESSONS as described
    from cnnlab.lab import run_lesson

    if args.lesson == "list":
        width = max(map(len, described)) + 2
        for name, text in described.items():
            print(f"{name:<{width}}{text}")
        return 0
    from cnnlab.cli._common import check_out, status

    check_out(args.out, data=args.data, folder=True)
    options = {"data": args.data, "gif": args.gif, "slide": args.slide}
    result = run_lesson(args.lesson, quick=args.quick, out=args.out, threads=args.threads, status=status, **options)
    print(f"wrote {result['figure']}")
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser("lab", help="the lectures' worked examples and experiments: numbers and one figure each")
    p.add_argument("lesson", choices=(*LESSONS, "list"), help="the lesson to run (list: what each one shows)")
    p.add_argument("--quick", action="store_true", help="tiny sizes and generated data: seconds, for a first look")
    p.add_argument("--out", default=".", help="folder for the figure lab-LESSON.png (default: the current folder)")
    p.add_argument("--data", help="dataset of the lessons that train (default: fashion-mnist; generated in --quick)")
    p.add_argument("--threads", type=count, help="torch CPU threads (default: 1 with --quick, else measured at start)")
    p.add_argument("--gif", action="store_true", help="conv: also write lab-conv.gif, the sliding window animated")
    p.add_argument(
        "--slide",
        action="store_true",
        help="conv, xo: the deck's own worked example (10×9 ⋆ 4×4 → 7×6; the X/O feature-map tables) as tables, "
        "in lab-LESSON-slide.png",
    )
    p.set_defaults(func=cmd_lab)
