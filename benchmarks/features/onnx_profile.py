"""Where ONNX Runtime spends a call: per-node times of an exported file, from ORT's own profiler.

    python -m benchmarks.features.onnx_profile runs/x/model.int8.onnx [--batch 256] [--calls 10] [--threads 1]

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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("onnx")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--calls", type=int, default=10)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--top", type=int, default=12)
    args = p.parse_args()
    nodes, wall_ms, shape = profile(args.onnx, args.batch, args.calls, args.threads)
    total = sum(us for _, us in nodes.values())
    print(
        f"{args.onnx}, input {shape}, {args.threads or 'default'} threads: {wall_ms:.2f} ms per call (median "
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
