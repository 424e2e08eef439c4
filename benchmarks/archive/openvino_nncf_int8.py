"""Archived exploration: OpenVINO int8 made by NNCF (post-training quantization of the OpenVINO model) against
OpenVINO bf16 and eager fp32, batch 256 — is there an engine that takes the fast model to 8× eager on an AMX CPU?

`cnnlab bench` measures int8 as an ONNX QDQ file (ONNX Runtime's static quantization), which OpenVINO runs at a
third of its bf16 speed on the fast model; NNCF quantizes the OpenVINO graph itself. NNCF is not a cnnlab
dependency: `pip install nncf` first (3.4.0 was used). Then, with a trained run:

    PYTHONPATH=src python -m benchmarks.archive.openvino_nncf_int8 RUN [--threads 2] [--seconds 2]

Prints each engine's test accuracy (no TTA) and three interleaved rounds of samples/s at batch 256 with the ratio
to eager fp32 measured in the same round. Results: BENCHMARKS.md, "On an AMX CPU (2026-12-07)".
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from cnnlab.data import Normalize, load_dataset
from cnnlab.deploy.export import export_onnx
from cnnlab.io import load_model

BATCH = 256
CALIBRATION = 512  # training images NNCF collects its ranges on


def rate(call, seconds: float) -> float:
    """Samples per second of `call()` on one batch of BATCH, repeated for `seconds` after one warm-up call."""
    call()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        call()
        n += BATCH
    return n / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seconds", type=float, default=2.0)
    args = p.parse_args()
    import nncf
    import openvino as ov

    torch.set_num_threads(args.threads)
    model, meta = load_model(args.run)
    model.eval()
    data = load_dataset("fashion-mnist", val_split=0)
    normalize = Normalize(meta.mean, meta.std)
    test, labels = normalize(data.test.images).numpy(), data.test.labels.numpy()
    pick = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(0))[:CALIBRATION]
    calibration = normalize(data.train.images[pick]).numpy()
    with tempfile.TemporaryDirectory() as tmp:
        base = ov.Core().read_model(str(export_onnx(model, meta, Path(tmp) / "model.onnx")))
    dataset = nncf.Dataset([calibration[i : i + 1] for i in range(len(calibration))])
    int8 = nncf.quantize(base, dataset, subset_size=CALIBRATION)
    core = ov.Core()
    engines = {}
    for name, graph, precision in (("openvino bf16", base, "bf16"), ("openvino int8 (NNCF)", int8, "bf16")):
        for hint in ("LATENCY", "THROUGHPUT"):
            config = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": hint}
            config |= {"INFERENCE_NUM_THREADS": args.threads, "NUM_STREAMS": 1}
            engines[f"{name}, {hint.lower()} hint"] = core.compile_model(graph, "CPU", config).create_infer_request()
    usable = len(test) // BATCH * BATCH
    for name, request in engines.items():
        logits = np.concatenate([request.infer({0: test[i : i + BATCH]})[0].copy() for i in range(0, usable, BATCH)])
        print(f"{name}: accuracy {(logits.argmax(1) == labels[:usable]).mean():.4f} on {usable:,} test images")
    batch = np.ascontiguousarray(test[:BATCH])
    tensor = torch.from_numpy(batch)
    for round_ in range(3):
        with torch.no_grad():
            eager = rate(lambda: model(tensor), args.seconds)
        cells = [f"eager fp32 {eager:,.0f}"]
        for name, request in engines.items():
            r = rate(lambda request=request: request.infer({0: batch}), args.seconds)
            cells.append(f"{name} {r:,.0f} ({r / eager:.2f}×)")
        print(f"round {round_}: " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
