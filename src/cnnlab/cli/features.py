"""`cnnlab features`: the penultimate-layer CNN codes of a run for every split of a dataset, and a linear probe."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cnnlab.cli._common import (
    add_run_data_flags,
    add_threads_flag,
    check_out,
    classification_only,
    open_run_data,
    status,
    use_threads,
)


def cmd_features(args: argparse.Namespace) -> int:
    from cnnlab.features import extract, linear_probe, save_codes
    from cnnlab.io import load_model

    use_threads(args)
    model, meta = load_model(args.run)
    classification_only(meta, "features")
    if args.out:
        if Path(args.out).suffix.lower() != ".npz":
            raise ValueError(f"--out {args.out}: the codes are written as an .npz file; give a name ending in .npz")
        check_out(args.out, args.run, meta, args.data, args.data_dir)
    splits = open_run_data(args, meta, split=None).splits
    codes = extract(model, meta, splits, args.device, log=status)
    sizes = ", ".join(f"{s} {len(codes[f'{s}_labels']):,}" for s in ("train", "val", "test") if f"{s}_labels" in codes)
    result: dict = {"out": None, "dim": int(codes["train_codes"].shape[1])}
    if args.out:
        result["out"] = str(save_codes(args.out, codes))
    if args.probe:
        result["probe"] = linear_probe(codes, c=args.probe_c, seed=0, log=status)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"{meta.model} codes of {splits.name}: {result['dim']} features; {sizes}"
        + (f" → {result['out']}" if result["out"] else "")
    )
    if args.probe:
        p = result["probe"]
        accs = ", ".join(f"{s} {p[f'{s}_accuracy']:.4f}" for s in ("train", "val", "test") if f"{s}_accuracy" in p)
        print(f"linear probe (logistic regression, C={args.probe_c:g}, on the training codes): accuracy {accs}")
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser("features", help="penultimate-layer CNN codes of every split (.npz) and a linear probe")
    p.add_argument("run", help="run folder or model file")
    add_run_data_flags(p)  # --data: another data set, whose classes may differ
    p.add_argument("--out", help=".npz file for the codes: train_codes, train_labels, val_…, test_…, classes")
    p.add_argument(
        "--probe",
        action="store_true",
        help="fit a logistic regression on the training codes and report its accuracy (scikit-learn)",
    )
    p.add_argument("--probe-c", type=float, default=1.0, help="inverse L2 strength of the probe (default: 1)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true")
    add_threads_flag(p)
    p.set_defaults(func=cmd_features)
