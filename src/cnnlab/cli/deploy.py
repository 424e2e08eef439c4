"""`cnnlab export` (ONNX, optionally int8) and `cnnlab bench` (inference engines)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cnnlab.cli._common import add_run_data_flags, check_out, count, open_run_data, status, use_threads


def cmd_export(args: argparse.Namespace) -> int:
    import tempfile

    from cnnlab.deploy.engines import ONNX_ENGINES
    from cnnlab.deploy.export import export_onnx
    from cnnlab.deploy.onnx_runtime import parse_input_size
    from cnnlab.deploy.quantize import calibration_images, quantize_int8
    from cnnlab.evaluate import evaluate
    from cnnlab.io import RunMeta, load_model, resolve_model_path

    if args.format != "onnx":
        raise ValueError(f"unknown --format '{args.format}'; cnnlab exports onnx")
    runtime = "onnxruntime"  # what checks the int8 file's parity: the runtime bench recommended, if any
    if args.recommended:
        args.int8, runtime = _recommended(args)
        if args.int8 is None:
            return 0
    use_threads(args)
    model, meta = load_model(args.run)
    source = resolve_model_path(args.run)
    if args.input:
        meta = RunMeta.from_dict({**meta.to_dict(), "input_size": list(parse_input_size(args.input))}, source)
    out = Path(args.out) if args.out else source.parent / ("model.int8.onnx" if args.int8 else "model.onnx")
    check_out(out, args.run, meta, args.data, args.data_dir)
    if not args.int8:
        path = export_onnx(model, meta, out, str(source), args.opset, log=status)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB): fp32, BN folded, dynamic batch axis")
        return 0
    data = open_run_data(args, meta)
    images, info = calibration_images(data.splits, args.calibration)
    held = data.splits.held_out()
    with tempfile.TemporaryDirectory() as tmp:
        fp32_path = export_onnx(model, meta, Path(tmp) / "model.onnx", str(source), args.opset, log=status)
        status(
            f"export: quantizing to int8, calibrating its ranges on {info['images']} {info['split']} images of "
            f"{info['dataset']} …"
        )
        path = quantize_int8(fp32_path, out, images, info)
        if held is None:
            print(f"wrote {path}; {data.splits.name} has no test split to compare accuracies on")
            return 0
        metric = meta.make_task().main_metric  # classification: accuracy; localization: mean IoU
        status(f"export: checking parity, the {metric} of fp32 and int8 on {len(held[1]):,} {held[0]} images …")
        fp32_acc = evaluate(ONNX_ENGINES[runtime](fp32_path), held[1], log=status)[metric]
        int8_acc = evaluate(ONNX_ENGINES[runtime](path), held[1], log=status)[metric]
    split, test = held
    by = "" if runtime == "onnxruntime" else f", run by {runtime}"
    print(
        f"test {metric} ({data.splits.name} {split}, {len(test):,} images{', flip TTA' if meta.tta else ''}{by}):"
        f"  fp32 {fp32_acc:.4f}   int8 {int8_acc:.4f}   ({(int8_acc - fp32_acc) * 100:+.2f} points)"
    )
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB): int8 QDQ, per-channel weights, BN folded")
    return 0


ONNX_RUNTIMES = ("onnxruntime", "openvino")  # bench rows "<runtime> <precision>" that run an exported .onnx file


def _exported_int8(engine: str) -> bool | None:
    """Which file bench's `engine` ran: the int8 QDQ file (True), the fp32 file (False, also for OpenVINO's bf16 /
    fp16 hints, which it applies to the fp32 file at load), or none (a torch path)."""
    runtime, _, precision = engine.partition(" ")
    return precision == "int8" if runtime in ONNX_RUNTIMES else None


def _recommended(args: argparse.Namespace) -> tuple[bool | None, str]:
    """--recommended BENCH.json: whether the engine `cnnlab bench --save` recommended runs the int8 file (True) or
    the fp32 file (False), and its runtime (onnxruntime or openvino); None, after saying so, when it is a torch
    path (nothing to export: run the model file)."""
    from cnnlab.files import regular_file
    from cnnlab.io import resolve_model_path

    path = regular_file(args.recommended, "--recommended file")
    if path.stat().st_size > 2**20:
        raise ValueError(
            f"--recommended {path}: {path.stat().st_size:,} bytes is not a bench result (give bench --save)"
        )
    try:
        result = json.loads(path.read_text())
        rec, run = result["recommendation"], result["run"]
        engine = rec["engine"]
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"--recommended {path}: not a result of `cnnlab bench --save` (no recommendation)") from None
    try:
        same = resolve_model_path(run).resolve() == resolve_model_path(args.run).resolve()
    except (OSError, ValueError):  # the benchmarked run is gone
        same = False
    if not same:
        raise ValueError(f"--recommended {path}: benchmarks {run}, not {args.run}; bench this run first")
    if args.int8:
        raise ValueError("--recommended chooses fp32 or int8 from the bench result: leave out --int8")
    int8 = _exported_int8(engine)
    if int8 is None:
        why = "no ONNX file to write; predict, evaluate and serve run the model file that way"
        print(f"bench recommends {engine} ({rec['precision']}) on this machine: {why}")
        return None, ""
    status(f"export: bench recommends {engine} ({rec['vs_eager']:.2f}× eager fp32 at batch {rec['batch']})")
    if engine.startswith("openvino"):  # its bf16 / fp16 are load-time hints on the fp32 file
        hint = f", precision='{rec['precision']}'" if rec["precision"] in ("bf16", "fp16") else ""
        status(
            "export: OpenVINO runs the written .onnx file as it is: cnnlab.deploy.openvino_runtime."
            f"OpenVinoClassifier(file{hint}), or without cnnlab openvino.Core().compile_model(file, 'CPU')"
        )
    return int8, engine.split()[0]


def cmd_bench(args: argparse.Namespace) -> int:
    from cnnlab.deploy.bench import bench_run, format_bench

    if args.save:
        check_out(args.save, args.run, data=args.data, data_dir=args.data_dir, flag="--save")

    try:
        batches = [int(b) for b in args.batch.split(",") if b.strip()]
    except ValueError:
        batches = []
    if not batches or min(batches) < 1:
        raise ValueError(f"--batch wants batch sizes separated by commas, e.g. 1,256; got '{args.batch}'")
    result = bench_run(
        args.run, batches, args.quick, args.data, args.data_dir, args.accuracy_images, threads=args.threads, log=status
    )
    if args.save:
        from cnnlab.io import save_json

        save_json(args.save, result)
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
    add_run_data_flags(p)  # --int8: the data to calibrate on and test with
    p.add_argument("--calibration", type=int, default=300, metavar="N", help="training images to calibrate on")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's)")
    p.add_argument(
        "--recommended",
        metavar="BENCH.json",
        help="write what `cnnlab bench RUN --save BENCH.json` recommended on this machine: the ONNX file (fp32 or "
        "int8) that its engine, ONNX Runtime or OpenVINO, ran",
    )
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "bench", help="latency and throughput of PyTorch, cnnlab's path, ONNX Runtime and OpenVINO fp32 / int8"
    )
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
    p.add_argument(
        "--threads",
        type=count,
        default=None,
        help="intra-op threads of every engine (default: $CNNLAB_THREADS, else measured at start)",
    )
    p.add_argument("--save", metavar="FILE.json", help="also write the result as JSON")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench)
