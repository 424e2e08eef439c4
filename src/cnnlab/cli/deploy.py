"""`cnnlab export` (ONNX, optionally int8) and `cnnlab bench` (inference engines); `cnnlab evaluate` / `predict`
hand an .onnx file to the ONNX Runtime functions here."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _log(msg: str) -> None:
    print(msg, file=sys.stderr)


def cmd_export(args: argparse.Namespace) -> int:
    import tempfile

    from cnnlab.deploy.export import export_onnx, parse_input_size
    from cnnlab.io import load_model, resolve_model_path

    if args.format != "onnx":
        raise ValueError(f"unknown --format '{args.format}'; cnnlab exports onnx")
    model, meta = load_model(args.run)
    if args.input:
        meta["input_size"] = parse_input_size(args.input)
    source = str(resolve_model_path(args.run))
    out = Path(args.out) if args.out else Path(source).parent / ("model.int8.onnx" if args.int8 else "model.onnx")
    if not args.int8:
        path = export_onnx(model, meta, out, source, args.opset)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB): fp32, BN folded, dynamic batch axis")
        return 0

    from cnnlab.deploy.onnx_runtime import OnnxClassifier, evaluate_onnx
    from cnnlab.deploy.quantize import calibration_images, quantize_int8, run_data

    splits = run_data(meta, args.run, args.data, args.data_dir)
    images, info = calibration_images(splits, args.calibration)
    with tempfile.TemporaryDirectory() as tmp:
        fp32_path = export_onnx(model, meta, Path(tmp) / "model.onnx", source, args.opset)
        _log(f"calibrating int8 ranges on {info['images']} {info['split']} images of {info['dataset']} …")
        path = quantize_int8(fp32_path, out, images, info)
        test = splits.test or splits.val
        if test is None:
            print(f"wrote {path}; {splits.name} has no test split to compare accuracies on")
            return 0
        tta = bool(meta.get("tta"))
        fp32_acc = evaluate_onnx(OnnxClassifier(fp32_path), test)["accuracy"]
        int8_acc = evaluate_onnx(OnnxClassifier(path), test)["accuracy"]
    split = "test" if splits.test is not None else "val"
    print(
        f"test accuracy ({splits.name} {split}, {len(test):,} images{', flip TTA' if tta else ''}):"
        f"  fp32 {fp32_acc:.4f}   int8 {int8_acc:.4f}   ({(int8_acc - fp32_acc) * 100:+.2f} points)"
    )
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB): int8 QDQ, per-channel weights, BN folded")
    return 0


def cmd_evaluate_onnx(args: argparse.Namespace) -> int:
    """`cnnlab evaluate MODEL.onnx`: the report of a run folder, computed by ONNX Runtime."""
    from cnnlab.cli.evaluate import load_split, report_evaluation
    from cnnlab.deploy.onnx_runtime import OnnxClassifier, evaluate_onnx

    model = OnnxClassifier(args.run)
    data_name, data = load_split(args, model.meta)
    result = evaluate_onnx(model, data, args.tta)
    path = Path(args.run)
    title = (
        f"{model.meta.get('model', path.name)} (ONNX) on {data_name} ({args.split}): accuracy {result['accuracy']:.4f}"
    )
    return report_evaluation(
        args, result, model.classes or data.classes, title, path.with_name(f"{path.stem}.confusion.png")
    )


def cmd_predict_onnx(args: argparse.Namespace) -> int:
    """`cnnlab predict MODEL.onnx images…`: a run folder's output, computed by ONNX Runtime."""
    from cnnlab.cli.evaluate import print_predictions
    from cnnlab.deploy.onnx_runtime import OnnxClassifier, predict_onnx_files

    model = OnnxClassifier(args.run, args.input, args.mean, args.std)
    return print_predictions(args, predict_onnx_files(model, args.images, args.top))


def cmd_bench(args: argparse.Namespace) -> int:
    from cnnlab.deploy.bench import bench_run, format_bench

    try:
        batches = [int(b) for b in args.batch.split(",") if b.strip()]
    except ValueError:
        batches = []
    if not batches or min(batches) < 1:
        raise ValueError(f"--batch wants batch sizes separated by commas, e.g. 1,256; got '{args.batch}'")
    result = bench_run(
        args.run, batches, args.quick, args.data, args.data_dir, args.accuracy_images, threads=args.threads, log=_log
    )
    if args.save:
        Path(args.save).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2) if args.json else format_bench(result))
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser("export", help="export a run to ONNX (BN folded, dynamic batch), optionally int8")
    p.add_argument("run", help="run folder or model file")
    p.add_argument("--format", default="onnx", help="onnx (the only format)")
    p.add_argument(
        "--int8",
        action="store_true",
        help="static int8 quantization (QDQ, per-channel weights), calibrated on training images",
    )
    p.add_argument("--out", help="file to write (default: RUN/model.onnx, or RUN/model.int8.onnx with --int8)")
    p.add_argument("--input", help="input size C,H,W when the model file does not record it, e.g. 1,28,28")
    p.add_argument("--data", help="data set to calibrate on and test with (default: the run's)")
    p.add_argument("--data-dir")
    p.add_argument("--calibration", type=int, default=300, metavar="N", help="training images to calibrate on")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("bench", help="latency and throughput of PyTorch, cnnlab's path and ONNX Runtime fp32 / int8")
    p.add_argument("run", help="run folder or model file")
    p.add_argument("--batch", default="1,256", help="batch sizes to time, separated by commas")
    p.add_argument("--quick", action="store_true", help="a few calls and 200 test images: checks that it runs")
    p.add_argument("--data", help="data set (default: the run's)")
    p.add_argument("--data-dir")
    p.add_argument(
        "--accuracy-images",
        type=int,
        default=None,
        metavar="N",
        help="test images to measure accuracy on (default: all)",
    )
    p.add_argument("--threads", type=int, default=None, help="intra-op threads of every engine (default: torch's)")
    p.add_argument("--save", metavar="FILE.json", help="also write the result as JSON")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench)
