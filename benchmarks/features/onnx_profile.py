"""Where ONNX Runtime or OpenVINO spends a call: per-node times of an exported file, from the engine's own profiler.

    python -m benchmarks.features.onnx_profile runs/x/model.int8.onnx [--batch 256] [--calls 10] [--threads 1]
    python -m benchmarks.features.onnx_profile runs/x/model.onnx --engine openvino --precision bf16 --threads 2
    python -m benchmarks.features.onnx_profile runs/x/model.onnx --engine openvino --as-written   # no ReLU moved

With `--engine openvino` the file is compiled as cnnlab's OpenVINO engine compiles it for a batch size it has seen
before (`deploy.openvino_runtime.compile_onnx`: each ReLU that feeds only a max pool moved after it, the shape fixed
to the batch; `--as-written` leaves the ReLUs where the file has them), with the plugin's per-node counters on
(PERF_COUNT); each node's time is the median over the calls of its real time.

Runs the file on random normalised input (the values do not change the work of a CNN), with ONNX Runtime's
profiling on, and prints a Markdown table: the nodes by time per call (the median over the calls, which a shared
machine's preemptions do not move), their op type and share, then the time per op type. The per-node times are
ORT's own "Node" events (kernel time, no Python), so their sum is a little below the wall time of a call; the
difference is the session's overhead (input copy, scheduling).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import defaultdict

import numpy as np
import onnxruntime as ort


def profile(path: str, batch: int, calls: int, threads: int | None) -> tuple[dict, float, list[int]]:
    """(node → (op type, median µs per call), median wall ms per call, input shape)."""
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    tmp = tempfile.mkdtemp()
    opts.enable_profiling = True
    opts.profile_file_prefix = os.path.join(tmp, "ort")
    session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    shape = [batch, *inp.shape[1:]]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    for _ in range(3):  # warm-up calls are profiled too; they are dropped below by keeping the last `calls` runs
        session.run(None, {inp.name: x})
    walls = []
    for _ in range(calls):
        t = time.perf_counter()
        session.run(None, {inp.name: x})
        walls.append(time.perf_counter() - t)
    events = json.load(open(session.end_profiling()))
    runs = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
    first_kept = runs[-calls]["ts"]
    ops: dict[str, str] = {}
    durations: dict[str, list[float]] = defaultdict(list)
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] >= first_kept:
            name = e["name"][: -len("_kernel_time")]
            ops[name] = e["args"].get("op_name", "?")
            durations[name].append(e["dur"])
    # the median call of each node: on a shared machine a preempted call can last 100× the others
    nodes = {name: (ops[name], float(np.median(d))) for name, d in durations.items()}
    return nodes, float(np.median(walls) * 1e3), shape


def profile_openvino(
    path: str, batch: int, calls: int, threads: int | None, precision: str, as_written: bool
) -> tuple[dict, float, list[int]]:
    """`profile`'s result for OpenVINO's CPU plugin."""
    import onnx

    from cnnlab.deploy.export import relus_after_pools
    from cnnlab.deploy.openvino_runtime import HINTS, core

    proto = onnx.load(path)
    model = core().read_model((proto if as_written else relus_after_pools(proto)).SerializeToString())
    shape = [batch, *(d.get_length() for d in list(model.input(0).get_partial_shape())[1:])]
    model.reshape(shape)
    config = {"INFERENCE_PRECISION_HINT": HINTS[precision], "PERFORMANCE_HINT": "LATENCY", "PERF_COUNT": True}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    request = core().compile_model(model, "CPU", config).create_infer_request()
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    for _ in range(3):
        request.infer({0: x})
    walls, ops, durations = [], {}, defaultdict(list)
    for _ in range(calls):
        t = time.perf_counter()
        request.infer({0: x})
        walls.append(time.perf_counter() - t)
        for info in request.get_profiling_info():
            us = info.real_time.total_seconds() * 1e6
            if us > 0:
                ops[info.node_name] = f"{info.node_type} ({info.exec_type})"
                durations[info.node_name].append(us)
    nodes = {name: (ops[name], float(np.median(d))) for name, d in durations.items()}
    return nodes, float(np.median(walls) * 1e3), shape


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("onnx")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--calls", type=int, default=10)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--top", type=int, default=12)
    p.add_argument("--engine", choices=("onnxruntime", "openvino"), default="onnxruntime")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32", help="OpenVINO's precision hint")
    p.add_argument("--as-written", action="store_true", help="OpenVINO: the graph as the file has it")
    args = p.parse_args()
    if args.engine == "openvino":
        nodes, wall_ms, shape = profile_openvino(
            args.onnx, args.batch, args.calls, args.threads, args.precision, args.as_written
        )
    else:
        nodes, wall_ms, shape = profile(args.onnx, args.batch, args.calls, args.threads)
    total = sum(us for _, us in nodes.values())
    print(
        f"{args.onnx}, {args.engine}, input {shape}, {args.threads or 'default'} threads: {wall_ms:.2f} ms per call (median "
        f"wall), nodes {total / 1e3:.2f} ms"
    )
    print("\n| node | op | ms per call | share |\n|---|---|---|---|")
    for name, (op, us) in sorted(nodes.items(), key=lambda kv: -kv[1][1])[: args.top]:
        print(f"| {name} | {op} | {us / 1e3:.3f} | {us / total:.1%} |")
    by_op: dict[str, float] = defaultdict(float)
    for op, us in nodes.values():
        by_op[op] += us
    print("\n| op type | ms per call | share |\n|---|---|---|")
    for op, us in sorted(by_op.items(), key=lambda kv: -kv[1]):
        print(f"| {op} | {us / 1e3:.3f} | {us / total:.1%} |")


if __name__ == "__main__":
    main()
