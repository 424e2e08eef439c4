"""cnnlab against its peers, measured side by side in one run; writes BENCHMARKS.md.

    python -m benchmarks.suite.run --quick     # throughput only, ≤ 5 minutes on 2 cores
    python -m benchmarks.suite.run --full      # + time-to-accuracy, the Keras 10-epoch recipe, fp32 vs bf16 accuracy

Run from the repository root. On a machine with a CUDA GPU both modes add the GPU rows of benchmarks/suite/gpu.py
(eager vs torch.compile vs CUDA graphs).

Peers, each measured in this run on this machine:
  (a) idiomatic PyTorch (benchmarks/suite/torch_idiomatic.py: DataLoader, batch 32, fp32), in its own process;
  (b) Keras 3 + TensorFlow-CPU running the course's model and recipe (benchmarks/suite/keras_course.py) in a venv
      that this script creates (benchmarks/.keras-venv, `pip install tensorflow-cpu keras`); skipped with a message
      when that cannot be installed;
  (c) the machine's matmul peak (4096² fp32 and bf16 on the threads torch uses) → the "speed of light".
Every rate is mean ± std over --seeds runs (default 3). Needs the real Fashion-MNIST files.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

import cnnlab
from benchmarks import ROOT
from benchmarks._common import (
    CLI_TABLE,
    cli_row,
    cnnlab_train_rate,
    fashion,
    fmt,
    matmul_peak,
    mean_std,
    train_flops_per_sample,
)
from benchmarks.suite.gpu import gpu_section
from cnnlab.data import Normalize, channel_stats
from cnnlab.infer import predict_logits
from cnnlab.models import create_model
from cnnlab.runtime import hardware_info, resolve_precision

KERAS_VENV = ROOT / "benchmarks" / ".keras-venv"
TORCH_PEER, KERAS_PEER = "benchmarks.suite.torch_idiomatic", "benchmarks.suite.keras_course"  # run with -m
# the sections of BENCHMARKS.md this script writes (with the title and summary above them); it keeps the others
OWN_SECTIONS = (
    "## Machine",
    "## Training throughput",
    "## LeNet-5 training throughput",
    "## Inference: test-set evaluation",
    "## Time to accuracy",
    "## GPU",
    "## Commands",
)


def inference_rates(
    model_name: str, seeds: int, input_size=(1, 28, 28), limit: int = 10_000, **kw
) -> dict[str, list[float]]:
    """Test-set evaluation samples/s: plain fp32 eager (NCHW, no_grad, batch 500) vs cnnlab's evaluation path."""
    splits = fashion()
    images = splits.test.images[:limit]
    if input_size[1] != images.shape[2]:
        images = splits.test.resized(input_size[1]).images[:limit]
    mean, std = channel_stats(splits.train.images)
    model = create_model(model_name, num_classes=10, in_chans=1, img_size=input_size[1], **kw).eval()
    norm = Normalize(mean, std)
    rates: dict[str, list[float]] = {"fp32 eager": [], "cnnlab": []}
    for _ in range(seeds):
        t = time.perf_counter()
        with torch.no_grad():
            for chunk in images.split(500):
                model(norm(chunk))
        rates["fp32 eager"].append(len(images) / (time.perf_counter() - t))
        t = time.perf_counter()
        predict_logits(model, images, mean, std, "cpu", "auto")
        rates["cnnlab"].append(len(images) / (time.perf_counter() - t))
    return rates


def other_sections(old: str) -> str:
    """The sections of an existing report that this script does not write (written by hand, by profile_gaps or by
    serve_load), in their order, as text to follow the new report."""
    parts = ["## " + p.rstrip("\n") for p in old.split("\n## ")[1:]]  # before the first: this script's title
    return "".join("\n" + p + "\n" for p in parts if not p.startswith(OWN_SECTIONS))


# ---- peers
def run_json(cmd: list[str], timeout: float = 3600) -> dict:
    """Run a peer (`python -m benchmarks.suite.NAME …`) from the repository root; the last line of its stdout."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def keras_python() -> tuple[str | None, str]:
    """The venv's python for the Keras peer, creating the venv on first use; (None, why) when impossible."""
    py = KERAS_VENV / "bin" / "python"
    if not py.exists():
        print("creating the Keras venv (pip install tensorflow-cpu keras; ~1.5 GB, a few minutes)…", flush=True)
        try:
            subprocess.run([sys.executable, "-m", "venv", str(KERAS_VENV)], check=True)
            subprocess.run(
                [str(py), "-m", "pip", "install", "-q", "tensorflow-cpu", "keras"],
                check=True,
                capture_output=True,
                text=True,
                timeout=1800,
            )
        except (subprocess.SubprocessError, OSError) as e:
            return None, f"Keras/TensorFlow could not be installed ({e.__class__.__name__}); Keras peer skipped"
    check = subprocess.run([str(py), "-c", "import keras, tensorflow"], capture_output=True, text=True)
    if check.returncode != 0:
        return None, f"Keras/TensorFlow do not import in {KERAS_VENV}: {check.stderr.strip()[-300:]}"
    return str(py), ""


FAST_30S = ["--recipe", "fast", "--val-split", "15000"]  # 2 epochs on 45,000 images: the ≤ 30 s setting
FAST_3MIN = ["--recipe", "fast", "--epochs", "10"]  # 10 epochs on 55,000 images: the ≤ 3 min setting
COURSE_10 = ["--model", "lecture_cnn", "--epochs", "10"]  # the course's model, Adam 1e-3, batch 128


def full_runs(seeds: list[int], keras_py: str | None, log) -> list[str]:
    """Time-to-accuracy: whole `cnnlab train` processes (wall time from process start, data load and test evaluation
    included) for the fast recipe over every seed, and one 10-epoch run each of the course's model in bf16 / fp32
    and of Keras's recipe. Returns the report's Markdown lines."""
    rows = [
        *CLI_TABLE,
        cli_row("fast-30s", FAST_30S, seeds, log),
        cli_row("fast-3min", FAST_3MIN, seeds, log),
        cli_row("course-bf16", COURSE_10, seeds[:1], log),
        cli_row("course-fp32", [*COURSE_10, "--precision", "fp32"], seeds[:1], log),
    ]
    keras_line = "Keras peer skipped (not installed)."
    if keras_py:
        k = run_json([keras_py, "-m", KERAS_PEER, "--epochs", "10", "--seed", "0", "--test"], 7200)
        log(f"Keras 10 epochs: test accuracy {k['test_accuracy']:.4f}, wall {k['wall_s']:.0f} s")
        rows.append(
            f"| Keras {k['keras']} / TF {k['tensorflow']}: the course's recipe (Adam, batch 32, 10 epochs, "
            f"dropout 0.5) | 0 | {100 * k['test_accuracy']:.2f} % | {k['wall_s']:.1f} | — |"
        )
        keras_line = (
            f"Keras trained at {fmt(k['samples_per_s'])} samples/s over its 10 epochs (float32, Keras's default "
            "policy)."
        )
    return [
        "",
        "## Time to accuracy (full mode): whole training processes on the 60,000 Fashion-MNIST training images",
        "Each row is `cnnlab train …` run as a user runs it (a fresh process; model, data load, training, test "
        "evaluation on the official 10,000 test images, plots); the 10-epoch course runs and Keras are one seed each "
        "(they take minutes to a quarter hour).",
        "",
        *rows,
        "",
        keras_line,
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="throughput only (default)")
    mode.add_argument("--full", action="store_true", help="also time-to-accuracy and the 10-epoch recipes")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--no-keras", action="store_true", help="skip the Keras peer")
    p.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    args = p.parse_args()
    seeds = list(range(args.seeds))
    start = time.perf_counter()
    device = torch.device("cpu")
    precision = resolve_precision("auto", device)
    hw = hardware_info(device)
    rows: list[str] = []
    log = lambda s: print(s, flush=True)  # noqa: E731

    # (c) speed of light
    peak = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    peak_best = {k: max(v.values()) for k, v in peak.items()}
    log(f"matrix-product peak, GFLOP/s: {peak}")
    lecture_flops = train_flops_per_sample("lecture_cnn")
    lenet_flops = train_flops_per_sample("lenet5")
    sol = {k: v * 1e9 / lecture_flops for k, v in peak_best.items()}

    # training throughput, lecture_cnn
    n = 3200 if not args.full else 12800
    ours = [cnnlab_train_rate("lecture_cnn", n, s, "auto", 128) for s in seeds]
    log(f"cnnlab lecture_cnn ({precision}): {fmt(ours)} samples/s")
    ours_fp32 = [cnnlab_train_rate("lecture_cnn", n, s, "fp32", 128) for s in seeds]
    log(f"cnnlab lecture_cnn (fp32): {fmt(ours_fp32)} samples/s")
    torch_idiom = [
        run_json([sys.executable, "-m", TORCH_PEER, "--samples", str(n), "--seed", str(s)])["samples_per_s"][-1]
        for s in seeds
    ]
    log(f"idiomatic PyTorch: {fmt(torch_idiom)} samples/s")
    keras_rates, keras_note, keras_info, py = [], "", {}, None
    if not args.no_keras:
        py, keras_note = keras_python()
        if py:
            for s in seeds:
                keras_info = run_json([py, "-m", KERAS_PEER, "--samples", str(n), "--epochs", "2", "--seed", str(s)])
                keras_rates.append(keras_info["samples_per_s"][-1])
            log(f"Keras {keras_info['keras']} / TF {keras_info['tensorflow']}: {fmt(keras_rates)} samples/s")
        else:
            log(keras_note)
    else:
        keras_note = "Keras peer skipped (--no-keras)"

    # LeNet-5 (per-step overhead bound)
    lenet = [cnnlab_train_rate("lenet5", 27_500, s, "auto", 128) for s in seeds]
    lenet512 = [cnnlab_train_rate("lenet5", 27_500, s, "auto", 512) for s in seeds]
    log(f"cnnlab lenet5: {fmt(lenet)} samples/s at batch 128, {fmt(lenet512)} at batch 512")

    # inference
    inf_lecture = inference_rates("lecture_cnn", args.seeds)
    inf_resnet = None
    from cnnlab.models import is_model

    if is_model("resnet18"):
        inf_resnet = inference_rates("resnet18", args.seeds, (1, 32, 32), limit=2000, small_input=True)
    log(f"inference lecture_cnn: fp32 eager {fmt(inf_lecture['fp32 eager'])}, cnnlab {fmt(inf_lecture['cnnlab'])}")

    full_md = full_runs(seeds, py, log) if args.full else []

    gpu_md = gpu_section(seeds, args.full, log)

    # ---- report
    m_ours = mean_std(ours)[0]
    rows.append("| what | samples/s (mean ± std) | vs Keras | vs idiomatic PyTorch | % of speed of light |")
    rows.append("|---|---|---|---|---|")

    def row(name: str, vals: list[float], prec: str) -> str:
        m = mean_std(vals)[0]
        vk = f"{m / mean_std(keras_rates)[0]:.2f}×" if keras_rates else "—"
        vt = f"{m / mean_std(torch_idiom)[0]:.2f}×"
        return f"| {name} | {fmt(vals)} | {vk} | {vt} | {100 * m / sol[prec]:.0f} % of {prec} |"

    rows.append(row(f"cnnlab lecture_cnn, {precision}, batch 128", ours, precision))
    rows.append(row("cnnlab lecture_cnn, fp32, batch 128", ours_fp32, "fp32"))
    rows.append(row("idiomatic PyTorch (DataLoader, batch 32, fp32)", torch_idiom, "fp32"))
    if keras_rates:
        rows.append(
            row(f"Keras {keras_info['keras']} / TF {keras_info['tensorflow']} (batch 32, fp32)", keras_rates, "fp32")
        )
    lenet_sol = peak_best[precision] * 1e9 / lenet_flops

    md = [
        "# Benchmarks",
        "",
        f"Generated by `python -m benchmarks.suite.run {'--full' if args.full else '--quick'}` on {time.strftime('%Y-%m-%d')} "
        f"in {time.perf_counter() - start:.0f} s. Seeds {seeds}; every rate is mean ± std over those seeds.",
        "",
        "## Machine",
        f"- CPU: {hw['cpu']}, {hw['threads']} threads; bf16 hardware flags: {', '.join(hw['bf16_flags']) or 'none'}",
        f"- torch {torch.__version__}, cnnlab {cnnlab.__version__}, Python {platform.python_version()}",
        f"- 4096³ matrix product on {hw['threads']} threads, measured in this run (best of MKL matmul and a oneDNN 1×1 "
        f"conv): fp32 {peak_best['fp32']:.0f} GFLOP/s (MKL {peak['fp32']['matmul']:.0f}, oneDNN "
        f"{peak['fp32']['onednn']:.0f}), bf16 {peak_best['bf16']:.0f} GFLOP/s (MKL {peak['bf16']['matmul']:.0f}, "
        f"oneDNN {peak['bf16']['onednn']:.0f})",
        f"- lecture_cnn: {lecture_flops / 1e6:.0f} MFLOP per training sample (3 × forward, 2 FLOP per MAC) → speed of "
        f"light {sol['fp32']:,.0f} samples/s fp32, {sol['bf16']:,.0f} samples/s bf16",
        "",
        "## Training throughput: the course's CNN (`lecture_cnn`) on Fashion-MNIST",
        f"Second epoch over the first {n:,} training images (the first epoch warms up), CPU, Adam 1e-3.",
        "",
        *rows,
        "",
        f"cnnlab ({precision}) is {m_ours / mean_std(keras_rates)[0]:.1f}× Keras." if keras_rates else keras_note,
        "",
        "## LeNet-5 training throughput (per-step overhead)",
        f"cnnlab lenet5, {precision}, batch 128, second epoch over 27,500 images: {fmt(lenet)} samples/s "
        f"(compute limit ≈ {lenet_sol:,.0f} samples/s); at batch 512, where the per-step costs are shared by four "
        f"times the samples: {fmt(lenet512)} samples/s.",
        "",
        "## Inference: test-set evaluation (10,000 test images; resnet18 the first 2,000)",
        "| model | fp32 eager (NCHW, no_grad) | cnnlab evaluate path (auto precision, channels_last, BN folded) | speed-up |",
        "|---|---|---|---|",
        f"| lecture_cnn 28×28 | {fmt(inf_lecture['fp32 eager'])} | {fmt(inf_lecture['cnnlab'])} | "
        f"{mean_std(inf_lecture['cnnlab'])[0] / mean_std(inf_lecture['fp32 eager'])[0]:.1f}× |",
    ]
    if inf_resnet:
        md.append(
            f"| resnet18 small_input 32×32 | {fmt(inf_resnet['fp32 eager'])} | {fmt(inf_resnet['cnnlab'])} | "
            f"{mean_std(inf_resnet['cnnlab'])[0] / mean_std(inf_resnet['fp32 eager'])[0]:.1f}× |"
        )
    md += full_md + gpu_md
    md += [
        "",
        "## Commands",
        "```",
        f"python -m benchmarks.suite.run {'--full' if args.full else '--quick'}",
        "```",
        "",
    ]
    out = Path(args.out)
    out.write_text("\n".join(md) + other_sections(out.read_text() if out.exists() else ""))
    log(f"wrote {args.out} ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
