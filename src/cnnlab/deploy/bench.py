"""`cnnlab bench RUN`: one table comparing inference engines on the CPU, on the run's own test images.

Engines (all given the same normalised float32 NCHW batches; the time is that of the forward pass only):
- `pytorch fp32 eager`: the model as trained, BN unfolded, NCHW, fp32 — the idiomatic PyTorch baseline;
- `cnnlab evaluate path`: `infer.run` on the prepared model (BN folded, channels_last, bf16 where `auto` picks it,
  each ReLU that feeds a max pool after the pool), as `infer.TorchClassifier` runs it;
- `onnxruntime fp32` / `onnxruntime int8`: the exported file and its QDQ int8 quantization;
- `openvino fp32` / `openvino int8` (where `cnnlab[openvino]` is installed): the same two files run by OpenVINO's CPU
  plugin, plus `openvino bf16` / `openvino fp16` (the fp32 file, OpenVINO's precision hint) where the plugin offers them.

With several threads the process CPU time counts all of them: with `--threads 1` it is the work of one call
without the time spent waiting for a core, the useful figure on a shared machine. Rounds interleave the engines (each round times every engine in turn), so that load from other jobs on a shared
machine spreads over all rows instead of landing on one. Accuracy — for another task than classification its main
metric, such as localization's mean IoU — is measured without flip TTA in every row.
"""

from __future__ import annotations

import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

import cnnlab
from cnnlab.deploy import openvino_runtime
from cnnlab.deploy.export import export_onnx
from cnnlab.deploy.onnx_runtime import OnnxClassifier
from cnnlab.deploy.openvino_runtime import OpenVinoClassifier
from cnnlab.deploy.quantize import CALIBRATION_IMAGES, calibration_images, quantize_int8
from cnnlab.files import available_memory
from cnnlab.infer import EVAL_BATCH, TorchClassifier, run
from cnnlab.inspect import activation_bytes
from cnnlab.io import load_model, resolve_model_path
from cnnlab.models import main_output
from cnnlab.run.splits import run_splits
from cnnlab.runtime import hardware_info

ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8")
PARITY_IMAGES = 256
MAX_BATCH = 4096


def cpu_flags() -> list[str]:
    try:
        flags = Path("/proc/cpuinfo").read_text().split("flags", 2)[1].split("\n", 1)[0].split()
    except (OSError, IndexError):
        return []
    return [f for f in ISA_FLAGS if f in flags]


def versions() -> dict:
    import os

    out = {
        "cnnlab": cnnlab.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    for name in ("onnx", "onnxruntime", "onnxscript", "openvino"):
        try:
            out[name] = __import__(name).__version__.split("-")[0]  # openvino: "2026.4.1-22982-<commit>-…"
        except ImportError:
            pass
    if os.environ.get("ONEDNN_MAX_CPU_ISA"):
        out["ONEDNN_MAX_CPU_ISA"] = os.environ["ONEDNN_MAX_CPU_ISA"]
    return out


def _engines(model: torch.nn.Module, meta, onnx: dict[str, OnnxClassifier]) -> dict[str, tuple[str, Callable]]:
    """name → (precision, forward(x float32 NCHW tensor) → logits ndarray): the two torch paths, then the
    classifiers of the exported files, `onnx` (name → classifier, each with its precision label)."""
    cpu = torch.device("cpu")
    classifier = TorchClassifier(model, meta, cpu, "auto")  # what evaluate runs, fed the batches already normalised
    precision = classifier.precision

    @torch.inference_mode()
    def eager(x: torch.Tensor) -> np.ndarray:
        return main_output(model(x)).float().numpy()

    def cnnlab_path(x: torch.Tensor) -> np.ndarray:
        return run(classifier.net, [x], cpu, precision, head=classifier.head).numpy()

    engines = {
        "pytorch fp32 eager NCHW": ("fp32", eager),
        "cnnlab evaluate path": (f"{precision} NHWC, BN folded", cnnlab_path),
    }
    for name, c in onnx.items():
        engines[name] = (_label(c), lambda x, c=c: c.run(x.numpy()))
    return engines


def _label(c: OnnxClassifier) -> str:
    """'int8 QDQ' for the quantized file; else the precision the engine computes in."""
    return "int8 QDQ" if c.precision == "int8" else getattr(c, "compute_precision", "fp32")


def _onnx_engines(fp32_path: Path, int8_path: Path, threads: int, log: Callable[[str], None]) -> dict:
    """ONNX Runtime on both files, then OpenVINO on both and in every other float precision its CPU plugin offers
    here — or, without the openvino extra, a line saying what would add its rows."""
    out = {
        "onnxruntime fp32": OnnxClassifier(fp32_path, threads=threads),
        "onnxruntime int8": OnnxClassifier(int8_path, threads=threads),
    }
    if not openvino_runtime.available():
        log(f"no OpenVINO rows: {openvino_runtime.MISSING}")
        return out
    rows = {"openvino fp32": (fp32_path, "fp32"), "openvino int8": (int8_path, "fp32")}
    rows |= {f"openvino {p}": (fp32_path, p) for p in openvino_runtime.cpu_precisions()[1:]}  # where the CPU has them
    for name, (path, precision) in rows.items():
        try:
            out[name] = OpenVinoClassifier(path, threads=threads, precision=precision)
        except ValueError as e:  # a graph OpenVINO cannot compile in that precision: the other rows are measured
            log(f"no {name} row: {e}")
    return out


def check_batches(batches: Sequence[int], meta) -> None:
    """Refuse batch sizes out of 1–MAX_BATCH, or whose activations (traced on the meta device, nothing allocated)
    would need more than half the memory available, before any batch is built."""
    for b in batches:
        if not 1 <= b <= MAX_BATCH:
            raise ValueError(f"--batch {b}: batch sizes are 1–{MAX_BATCH:,}")
    largest = max(batches)
    need = largest * activation_bytes(meta.model, meta.model_args, meta.input_size)
    free = available_memory()
    if need > free // 2:
        size = "×".join(map(str, meta.input_size))
        raise ValueError(
            f"--batch {largest}: a batch of {largest} {size} images needs about {need / 2**30:.1f} GiB of "
            f"activations, more than half the memory available ({free / 2**30:.1f} GiB); give smaller batches"
        )


def _batch(images: torch.Tensor, n: int) -> torch.Tensor:
    reps = -(-n // len(images))
    return images.repeat(reps, 1, 1, 1)[:n].contiguous() if reps > 1 else images[:n].contiguous()


def _time_calls(fn: Callable, x: torch.Tensor, calls: int) -> list[tuple[float, float]]:
    """(wall s, process CPU s) per call: on a shared machine the CPU time shows the work without the waiting."""
    times = []
    for _ in range(calls):
        start, cpu = time.perf_counter(), time.process_time()
        fn(x)
        times.append((time.perf_counter() - start, time.process_time() - cpu))
    return times


def _timings(engines: dict, x: torch.Tensor, rounds: int, calls: int, warmup: int) -> dict[str, list]:
    for _, fn in engines.values():
        _time_calls(fn, x, warmup)
    times: dict[str, list] = {name: [] for name in engines}
    for _ in range(rounds):
        for name, (_, fn) in engines.items():
            times[name] += _time_calls(fn, x, calls)
    return times


def _score(fn: Callable, x: torch.Tensor, targets: torch.Tensor, task) -> float:
    """The task's main metric (classification: accuracy) of one engine's outputs."""
    outputs = np.concatenate([fn(chunk) for chunk in x.split(EVAL_BATCH)])
    return task.score(torch.from_numpy(np.asarray(outputs, np.float32)), targets)


def bench_run(
    run_path: str | Path,
    batches: Sequence[int] = (1, 256),
    quick: bool = False,
    data: str | None = None,
    data_dir: str | None = None,
    accuracy_images: int | None = None,
    calibration: int = CALIBRATION_IMAGES,
    threads: int | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> dict:
    """Latency (p50 / p99 ms) and throughput (samples/s) per batch size, and test accuracy, for each engine.

    threads: intra-op threads of torch and ONNX Runtime alike (default: torch's, one per core).
    """
    if threads:
        torch.set_num_threads(threads)
    model, meta = load_model(run_path)
    check_batches(batches, meta)
    model.eval()
    task = meta.make_task()
    splits = run_splits(run_path, data=data, data_dir=data_dir).splits
    held = splits.held_out()
    if held is None:
        raise ValueError(f"{splits.name} has no test or validation split to measure accuracy on")
    test = held[1]
    n_acc = min(len(test), accuracy_images or (200 if quick else len(test)))
    with tempfile.TemporaryDirectory() as tmp:
        log("exporting to ONNX and quantizing to int8 …")
        fp32_path = export_onnx(model, meta, Path(tmp) / "model.onnx", str(resolve_model_path(run_path)))
        calib, info = calibration_images(splits, 50 if quick else calibration)
        int8_path = quantize_int8(fp32_path, Path(tmp) / "model.int8.onnx", calib, info)
        threads = torch.get_num_threads()  # ORT and OpenVINO as many intra-op threads as torch
        onnx = _onnx_engines(fp32_path, int8_path, threads, log)
        engines = _engines(model, meta, onnx)
        x_all = torch.from_numpy(onnx["onnxruntime fp32"].normalize(test.images[:n_acc]))
        rows = {name: {"engine": name, "precision": prec} for name, (prec, _) in engines.items()}
        log(f"{task.main_metric} on {n_acc:,} test images …")
        for name, (_, fn) in engines.items():
            rows[name][task.main_metric] = _score(fn, x_all, test.labels[:n_acc], task)
        parity = _parity(engines, x_all[:PARITY_IMAGES], task)
        for b in batches:
            log(f"timing batch {b} …")
            x = _batch(x_all, b)
            if quick:
                rounds, calls, warmup = 1, 2, 1
            else:
                # several calls per engine and round: an engine's first call after another engine's finds its
                # threads asleep and its data out of the caches (OpenVINO bf16, the fast recipe's model at batch
                # 256, AMX: 6.4–9.8 ms against 3.5–5.6 ms for the calls after it) — with 2 calls a round, half
                # the calls timed were first calls, and the median measured the switching, not the engine
                rounds, calls, warmup = (5, 40, 20) if b == 1 else (5, max(4, 2048 // b), 2)
            for name, times in _timings(engines, x, rounds, calls, warmup).items():
                wall, cpu = (np.asarray(t) for t in zip(*times, strict=True))
                rows[name][f"b{b}"] = {
                    "p50_ms": float(np.percentile(wall, 50) * 1e3),
                    "p99_ms": float(np.percentile(wall, 99) * 1e3),
                    "samples_per_s": b / statistics.median(wall),
                    "cpu_p50_ms": float(np.percentile(cpu, 50) * 1e3),
                    "samples_per_cpu_s": b / max(statistics.median(cpu), 1e-9),
                    "calls": len(wall),
                }
    result = {
        "run": str(run_path),
        "model": meta.model,
        "input_size": list(meta.input_size),
        "task": task.name,
        "metric": task.main_metric,
        "dataset": splits.name,
        "accuracy_images": n_acc,
        "batches": list(batches),
        "quick": quick,
        "rows": list(rows.values()),
        "parity": parity,
        "calibration": info,
        "hardware": {**hardware_info(torch.device("cpu")), "isa": cpu_flags()},
        "versions": versions(),
    }
    result["recommendation"] = recommend(result)
    return result


MAX_METRIC_LOSS = 0.005  # an engine is recommended only if it loses at most 0.5 points of the main metric
MIN_AGREEMENT = 0.98  # … and predicts what eager fp32 predicts on at least 98 % of the parity images


def _fits(row: dict, base: dict, result: dict, metric: str, max_loss: float) -> bool:
    """Whether an engine keeps eager fp32's metric (within `max_loss`) and, where parity was measured, its
    predictions (argmax agreement ≥ MIN_AGREEMENT)."""
    agree = result.get("parity", {}).get(row["engine"], {}).get("argmax_agree", 1.0)
    return row[metric] >= base[metric] - max_loss and (row is base or agree >= MIN_AGREEMENT)


def recommend(result: dict, max_loss: float = MAX_METRIC_LOSS) -> dict:
    """The engine to ship on this machine, from a bench result: the highest throughput at the largest batch measured
    among the engines whose main metric is within `max_loss` of PyTorch fp32 eager's (the first row) and whose
    predictions agree with it (`_fits`). An engine is never recommended for a speed it was not measured to have:
    int8 or OpenVINO wins only where its measured rate is the highest, above eager's.
    Returns engine, precision, batch, its samples/s, the speed-up over eager and its batch-1 p50 where measured."""
    metric, rows = result.get("metric", "accuracy"), result["rows"]
    batch = max(result["batches"])
    base = rows[0]
    fit = [r for r in rows if _fits(r, base, result, metric, max_loss)]
    best = max(fit, key=lambda r: r[f"b{batch}"]["samples_per_s"])
    rate = best[f"b{batch}"]["samples_per_s"]
    out = {
        "engine": best["engine"],
        "precision": best["precision"],
        "batch": batch,
        "samples_per_s": rate,
        "vs_eager": rate / base[f"b{batch}"]["samples_per_s"],
        "metric_change": best[metric] - base[metric],
        "left_out": [r["engine"] for r in rows if r not in fit],
    }
    if 1 in result["batches"]:
        out["b1_p50_ms"] = best["b1"]["p50_ms"]
    return out


def describe_recommendation(rec: dict, metric: str = "accuracy") -> str:
    """'recommended here: onnxruntime int8 (int8 QDQ): 5.95× eager fp32 at batch 256, …'."""
    line = (
        f"recommended here: {rec['engine']} ({rec['precision']}): {rec['vs_eager']:.2f}× eager fp32 at batch "
        f"{rec['batch']} ({rec['samples_per_s']:,.0f} samples/s), {metric} {rec['metric_change']:+.4f}"
    )
    if "b1_p50_ms" in rec:
        line += f", batch 1 p50 {rec['b1_p50_ms']:.3f} ms"
    if rec["left_out"]:
        line += (
            f"; not considered (lose > {MAX_METRIC_LOSS:g} {metric}, or agree with eager on < {MIN_AGREEMENT:.0%}): "
            + ", ".join(rec["left_out"])
        )
    return line


def _parity(engines: dict, x: torch.Tensor, task) -> dict:
    """Max |output difference| and agreement of the predicted class of each engine against PyTorch fp32 eager."""
    names = list(engines)
    ref = engines[names[0]][1](x)
    out = {}
    for name in names[1:]:
        got = engines[name][1](x)
        out[name] = {
            "max_abs": float(np.abs(got - ref).max()),
            "argmax_agree": task.agreement(torch.from_numpy(np.asarray(got)), torch.from_numpy(np.asarray(ref))),
            "images": len(x),
        }
    return out


def format_bench(result: dict) -> str:
    """The bench table (markdown), then parity, hardware and versions."""
    batches = result["batches"]
    base = result["rows"][0]
    metric = result.get("metric", "accuracy")
    head = ["engine", "precision", metric]
    for b in batches:  # batch 1: latency; larger batches: throughput; both also per CPU time of the process
        head += [f"b{b} p50 ms", f"b{b} p99 ms", f"b{b} CPU ms"] if b == 1 else [f"b{b} samples/s", f"b{b} /CPU-s"]
        head.append(f"b{b} vs eager")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in result["rows"]:
        cells = [row["engine"], row["precision"], f"{row[metric]:.4f}"]
        for b in batches:
            t = row[f"b{b}"]
            if b == 1:
                cells += [f"{t['p50_ms']:.3f}", f"{t['p99_ms']:.3f}", f"{t['cpu_p50_ms']:.3f}"]
            else:
                cells += [f"{t['samples_per_s']:,.0f}", f"{t['samples_per_cpu_s']:,.0f}"]
            cells.append(f"{t['samples_per_s'] / base[f'b{b}']['samples_per_s']:.2f}×")
        lines.append("| " + " | ".join(cells) + " |")
    c, h, w = result["input_size"]
    hw, v = result["hardware"], result["versions"]
    lines += [
        "",
        f"{result['model']} {c}×{h}×{w} on {result['dataset']}; {metric} on {result['accuracy_images']:,} test "
        f"images, no TTA; int8 calibrated on {result['calibration']['images']} training images"
        + (" (quick mode: too few calls for reliable timings)" if result["quick"] else ""),
    ]
    for name, p in result["parity"].items():
        lines.append(
            f"parity vs eager, {name}: max |Δlogit| {p['max_abs']:.2e}, argmax agrees on "
            f"{p['argmax_agree']:.2%} of {p['images']} images"
        )
    if "recommendation" in result:
        lines.append(describe_recommendation(result["recommendation"], metric))
    lines.append(f"hardware: {hw['cpu']}, {hw['threads']} threads, ISA {' '.join(hw['isa']) or 'unknown'}")
    lines.append("versions: " + ", ".join(f"{k} {val}" for k, val in v.items()))
    return "\n".join(lines)
