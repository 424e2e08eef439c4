"""Device and numeric precision: bf16 autocast + channels_last where the hardware does bf16 fast, else fp32."""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import torch

PRECISIONS = ("auto", "fp32", "bf16")


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


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' → 'bf16' on CUDA with bf16 support or a CPU with AMX / AVX512-BF16, else 'fp32'."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision '{precision}'; use {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_bf16_flags() else "fp32"


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
        "threads": torch.get_num_threads(),
        "bf16_flags": list(cpu_bf16_flags()),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info
