"""The runtime layer: device, numeric precision (bf16 autocast + channels_last where the hardware does bf16 fast,
else fp32), torch.compile modes and a description of the hardware. It imports nothing of cnnlab."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import time
from pathlib import Path

import torch

from cnnlab.files import atomic_write

PRECISIONS = ("auto", "fp32", "bf16")
# torch.compile modes for the training forward pass; "reduce-overhead" replays CUDA graphs on a GPU
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' → cuda when available, else cpu; asking for cuda without one is an error."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but torch sees no CUDA GPU (use --device cpu or auto)")
    if device.split(":")[0] not in ("cpu", "cuda"):
        raise ValueError(f"unknown device '{device}'; use auto, cpu or cuda")
    return torch.device(device)


@functools.cache
def cpu_bf16_flags() -> tuple[str, ...]:
    """The CPU's flags that make bf16 matmul/conv fast (AMX tiles, AVX-512 BF16), from /proc/cpuinfo."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split("flags", 2)[1].split("\n", 1)[0].split()
    except (OSError, IndexError):
        return ()
    return tuple(f for f in ("amx_bf16", "avx512_bf16") if f in flags)


def compile_mode(mode: str | bool) -> str:
    """One of COMPILE_MODES; True / False (`compile: true` in a YAML file) mean 'default' / 'off'."""
    mode = {True: "default", False: "off"}.get(mode, mode)
    if mode not in COMPILE_MODES:
        raise ValueError(f"unknown --compile '{mode}'; choose from {', '.join(COMPILE_MODES)}")
    return mode


def compiled(model: torch.nn.Module, mode: str | bool) -> torch.nn.Module:
    """`model` itself for mode 'off' (or False), else `torch.compile(model, mode=...)` sharing its parameters.

    On a GPU, 'reduce-overhead' captures CUDA graphs (one launch per step instead of one per kernel). On a CPU,
    measure first: compiling made the course's CNN slower on a 2-core CPU (BENCHMARKS.md, "torch.compile on this CPU").
    """
    mode = compile_mode(mode)
    return model if mode == "off" else torch.compile(model, mode=mode)


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' → 'bf16' on CUDA with bf16 support, and on a CPU with AMX / AVX512-BF16 where a measured check finds
    bf16 faster than fp32 (see `bf16_check`); 'fp32' elsewhere — never bf16 where it would be slow."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision '{precision}'; use {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    # bf16 instructions are necessary but not sufficient: check once per machine that they pay off here
    return "bf16" if cpu_bf16_flags() and bf16_check()["bf16_faster"] else "fp32"


def _step_ms(precision: str, reps: int = 4) -> float:
    """Best time (ms) of one training step of a small conv stack at batch 64 — the shape of work cnnlab models do.

    Runs under a forked RNG: the probe's own seed never leaks into the caller's random stream (a run's --seed).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return _time_probe_step(precision, reps)


def _time_probe_step(precision: str, reps: int) -> float:
    net = torch.nn.Sequential(
        torch.nn.Conv2d(32, 64, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(64, 64, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(64 * 49, 10),
    )
    # both in channels_last, as cnnlab runs them on a CPU (see use_channels_last)
    net = net.to(memory_format=torch.channels_last)
    x = torch.randn(64, 32, 14, 14).contiguous(memory_format=torch.channels_last)
    best = float("inf")
    for i in range(reps + 2):  # two warm-up steps (oneDNN primitive creation)
        start = time.perf_counter()
        with autocast(torch.device("cpu"), precision):
            loss = net(x).float().square().mean()
        loss.backward()
        if i >= 2:
            best = min(best, time.perf_counter() - start)
    return best * 1e3


def check_file() -> Path | None:
    """Where the measured bf16 check is cached: $CNNLAB_PRECISION_CACHE (a file path; 'off' disables the cache),
    else precision-check.json in $CNNLAB_CACHE or $XDG_CACHE_HOME/cnnlab (default ~/.cache/cnnlab)."""
    setting = os.environ.get("CNNLAB_PRECISION_CACHE", "")
    if setting.lower() in ("off", "0", "none", "false"):
        return None
    if setting:
        return Path(setting)
    if os.environ.get("CNNLAB_CACHE"):
        return Path(os.environ["CNNLAB_CACHE"]) / "precision-check.json"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cnnlab" / "precision-check.json"


@functools.cache
def bf16_check() -> dict:
    """Whether bf16 autocast trains faster than fp32 on this CPU: measured once (≈ 0.3 s), cached per machine.

    The cache (see `check_file`) is keyed by CPU model, instruction set (with oneDNN's cap: ONEDNN_MAX_CPU_ISA=AVX2
    makes the same CPU another machine), thread count and torch version.
    """
    key = (
        f"{hardware_info(torch.device('cpu'))['cpu']}|{cpu_isa()}|{torch.get_num_threads()} threads|"
        f"torch {torch.__version__}"
    )
    path = check_file()
    cached: dict = {}
    if path is not None:
        try:
            cached = json.loads(path.read_text())
            if key in cached:
                return cached[key]
        except (OSError, ValueError):
            cached = {}
    fp32, bf16 = _step_ms("fp32"), _step_ms("bf16")
    result = {"fp32_ms": round(fp32, 3), "bf16_ms": round(bf16, 3), "bf16_faster": bf16 < 0.9 * fp32}
    if path is not None:
        try:
            text = json.dumps({**cached, key: result}, indent=2)
            atomic_write(path, lambda tmp: Path(tmp).write_text(text))
        except OSError:
            pass  # a read-only cache only costs the measurement next time
    return result


def use_channels_last(device: torch.device, precision: str) -> bool:
    """NHWC memory for conv nets: always on a CPU (oneDNN's pooling and convolutions are several times faster in it,
    fp32 included — max-pooling 128×64×28×28 takes 14 ms in NCHW and 1.8 ms in NHWC here), with bf16 on CUDA."""
    return device.type == "cpu" or precision == "bf16"


def autocast(device: torch.device, precision: str):
    """Context manager: bf16 autocast on `device` when precision is 'bf16', a no-op otherwise."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def hardware_info(device: torch.device) -> dict:
    """What ran the job: CPU model and threads, GPU name, torch version."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "device": str(device),
        "cpu": cpu,
        "isa": cpu_isa(),
        "threads": torch.get_num_threads(),
        "bf16_flags": list(cpu_bf16_flags()),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def cpu_isa() -> str:
    """The vector instruction set torch's CPU kernels use (AVX2, AVX512, …), with oneDNN's cap when one is set."""
    isa = torch.backends.cpu.get_cpu_capability()
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA")
    return f"{isa} (oneDNN capped at {cap})" if cap else isa


def precision_reason(requested: str, device: torch.device, resolved: str) -> str:
    """One line saying why `resolved` was chosen, e.g. 'fp32: this CPU has no bf16 instructions'."""
    if requested != "auto":
        return f"{resolved}: asked for"
    if device.type == "cuda":
        return f"{resolved}: the GPU {'does' if resolved == 'bf16' else 'does not do'} bf16"
    flags = cpu_bf16_flags()
    if not flags:
        return f"{resolved}: this CPU has no bf16 instructions (AVX512-BF16 or AMX)"
    check = bf16_check()
    speed = f"probe step fp32 {check['fp32_ms']:.1f} ms, bf16 {check['bf16_ms']:.1f} ms"
    if resolved == "bf16":
        return f"bf16: {'/'.join(flags)}, measured faster than fp32 ({speed})"
    return f"fp32: bf16 was not measured faster here ({speed})"


def process_seconds() -> float:
    """Seconds since this process started (Linux: from /proc; elsewhere since cnnlab.runtime was imported)."""
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        start = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19]) / ticks
        return float(Path("/proc/uptime").read_text().split()[0]) - start
    except (OSError, ValueError, IndexError):
        return time.perf_counter() - _IMPORTED


_IMPORTED = time.perf_counter()


def choose_threads(step, candidates: list[int], reps: int = 3) -> tuple[int, dict[int, float]]:
    """Time `step()` (one training step, on a copy) at each CPU thread count; set and return the one to use.

    The first candidate (normally one thread per core) is kept unless another is ≥ 10 % faster: on a busy machine,
    OpenMP threads that wait for a core the OS gave to another process can make every step 10× slower, and one
    thread then wins. The candidates are timed from the last (one thread: never collapses) to the first, and one
    whose warm-up step already takes 3× the best time so far is not timed further (it would only waste the
    seconds the measurement is meant to save). Runs under a forked RNG (dropout in the step does not move the
    run's random stream). Returns (threads, {threads: best seconds per step}).
    """
    times: dict[int, float] = {}
    with torch.random.fork_rng(devices=[]):
        for n in reversed(candidates):
            torch.set_num_threads(n)
            start = time.perf_counter()
            step()  # warm-up: kernels and primitives for this thread count
            best = time.perf_counter() - start
            if times and best > 3 * min(times.values()):
                times[n] = best
                continue
            best = float("inf")
            for _ in range(reps):
                start = time.perf_counter()
                step()
                best = min(best, time.perf_counter() - start)
            times[n] = best
    chosen = candidates[0]
    fastest = min(times, key=times.get)
    if times[fastest] < 0.9 * times[chosen]:
        chosen = fastest
    torch.set_num_threads(chosen)
    return chosen, times
