"""The GPU part of the benchmark, run by benchmarks/suite/run.py when torch sees a CUDA GPU.

    python -m benchmarks.suite.gpu      # alone: throughput rows (+ --full: time to accuracy), printed as Markdown

Training samples/s of `lecture_cnn` (28×28) and `resnet18` (small_input, 28×28) on Fashion-MNIST with the data
on the GPU, bf16 autocast, eager against `--compile default` and `--compile reduce-overhead` (torch.compile with
CUDA graphs); with --full also whole `cnnlab train --recipe fast --device cuda` processes (wall time from process
start) for the "94 % in ≤ 5 s" target. On a machine without CUDA it says so and measures nothing.
"""

from __future__ import annotations

import argparse
import sys

import torch

from benchmarks._common import CLI_TABLE, cli_row, cnnlab_train_rate, fmt

MODELS = {"lecture_cnn": {}, "resnet18": {"small_input": True}}
COMPILE = ("off", "default", "reduce-overhead")
FAST_GPU = [  # the fast recipe on the GPU; more epochs than the CPU's 2, since a GPU epoch takes about a second
    ["--recipe", "fast", "--device", "cuda", "--epochs", "10"],
    ["--recipe", "fast", "--device", "cuda", "--epochs", "10", "--compile", "reduce-overhead"],
    ["--recipe", "fast", "--device", "cuda", "--epochs", "20", "--compile", "reduce-overhead"],
]


def cuda_train_rate(model_name: str, compile_mode: str, seed: int, device: str = "cuda") -> float:
    """samples/s of cnnlab's Trainer on the GPU: batch 256, third epoch over 20,000 images."""
    return cnnlab_train_rate(
        model_name, 20_000, seed, "auto", 256, device, compile_mode, epochs=3, **MODELS[model_name]
    )


def gpu_section(seeds: list[int], full: bool, log) -> list[str]:
    """The report's Markdown lines for the GPU, or one line saying that there is none."""
    if not torch.cuda.is_available():
        log("no CUDA GPU: the GPU rows are not measured on this machine")
        return [
            "",
            "## GPU",
            "No CUDA GPU on this machine (`torch.cuda.is_available()` is False): nothing measured. "
            "Run `python -m benchmarks.suite.run` on a GPU machine for these rows.",
        ]
    md = [
        "",
        f"## GPU: {torch.cuda.get_device_name()}",
        "",
        "Training samples/s, Fashion-MNIST on the GPU, bf16 autocast, Adam, batch 256, third epoch over 20,000 "
        "images (the first two warm up and compile).",
        "",
        "| model | eager | torch.compile | torch.compile + CUDA graphs (reduce-overhead) |",
        "|---|---|---|---|",
    ]
    for name in MODELS:
        rates = {mode: [cuda_train_rate(name, mode, s) for s in seeds] for mode in COMPILE}
        log(f"GPU {name}: " + ", ".join(f"{m} {fmt(r)}" for m, r in rates.items()))
        md.append(f"| {name} | " + " | ".join(fmt(rates[m]) for m in COMPILE) + " |")
    if full:
        md += ["", *CLI_TABLE]
        md += [cli_row("gpu-" + "-".join(a.strip("-") for a in args[3:]), args, seeds, log) for args in FAST_GPU]
    return md


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--full", action="store_true", help="also time-to-accuracy runs of the fast recipe")
    p.add_argument("--seeds", type=int, default=3)
    args = p.parse_args()
    print("\n".join(gpu_section(list(range(args.seeds)), args.full, lambda s: print(s, file=sys.stderr, flush=True))))
