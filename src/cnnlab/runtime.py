"""The runtime layer: device, numeric precision (bf16 autocast + channels_last where the hardware does bf16 fast,
else fp32), torch.compile modes and a description of the hardware. It imports nothing of cnnlab."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from cnnlab.files import atomic_write

PRECISIONS = ("auto", "fp32", "bf16")
PRECISION_ENV = "CNNLAB_PRECISION"  # what 'auto' means on this machine when set: fp32 or bf16 (nothing measured)
# torch.compile modes for the training forward pass; "reduce-overhead" replays CUDA graphs on a GPU
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")


# glibc's malloc: the largest mmap threshold it accepts on 64-bit (32 MiB), and free memory kept up to 1 GiB
_MMAP_THRESHOLD, _TRIM_THRESHOLD = 32 << 20, 1 << 30
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)


def is_malloc_setting(name: str) -> bool:
    """Whether an environment variable tunes glibc's malloc (MALLOC_*_, GLIBC_TUNABLES): the user's word on it."""
    return name.startswith("MALLOC_") or name == "GLIBC_TUNABLES"


def reuse_freed_memory() -> bool:
    """Let glibc's malloc keep the memory a training step frees and hand it back to the next step.

    By default glibc serves blocks over 128 KiB (a threshold it raises as it goes, up to 32 MiB) with fresh mmaps
    and returns freed memory at the top of its heap to the system, so a step's activation and gradient buffers (6.4 MB
    for a 128×16×28×28 map) come back as new pages the kernel must fault in and zero: the `fill_` of max-pool's
    backward alone took 2.7 ms of a 30 ms step. The mmap threshold at its maximum and up to 1 GiB of freed memory
    kept: the fast recipe's fp32 step 1.21× as fast, the best recipe's 1.15× (2-core Zen 3; whole runs gain less;
    BENCHMARKS.md, "Memory a step frees"). The cost: the process keeps its peak memory until it exits, and threads with arenas of their own
    keep theirs apart. So `cnnlab train` calls it (its memory peaks every step anyway), never the library on import
    nor `cnnlab serve`, whose `--max-memory` bounds what it holds; call it yourself in a training script. Nothing
    happens where libc is not glibc, or where the user tuned malloc (MALLOC_*_ or GLIBC_TUNABLES in the
    environment). Returns whether the settings took.
    """
    if any(is_malloc_setting(k) for k in os.environ):
        return False
    try:
        import ctypes

        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))


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
def _cpu_flags() -> tuple[str, ...]:
    """The first CPU's flags in /proc/cpuinfo (empty where there is none)."""
    try:
        return tuple(Path("/proc/cpuinfo").read_text().split("flags", 2)[1].split("\n", 1)[0].split())
    except (OSError, IndexError):
        return ()


def cpu_bf16_flags() -> tuple[str, ...]:
    """The CPU's flags that make bf16 matmul/conv fast (AMX tiles, AVX-512 BF16), from /proc/cpuinfo."""
    return tuple(f for f in ("amx_bf16", "avx512_bf16") if f in _cpu_flags())


def cpu_int8_dot_flags() -> tuple[str, ...]:
    """The CPU's int8 dot-product flags (VNNI, AMX int8): without them int8 kernels can saturate at full range."""
    return tuple(f for f in ("amx_int8", "avx512_vnni", "avx_vnni") if f in _cpu_flags())


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
    """'auto' → $CNNLAB_PRECISION when set; else 'bf16' on CUDA with bf16 support, and on a CPU with AMX /
    AVX512-BF16 where a measured check finds bf16 faster than fp32 (see `bf16_check`); 'fp32' elsewhere — never
    bf16 where it would be slow."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision '{precision}'; use {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    setting = os.environ.get(PRECISION_ENV, "").strip().lower()
    if setting and setting != "auto":
        if setting not in PRECISIONS:
            raise ValueError(f"{PRECISION_ENV}={setting!r}: expected {', '.join(PRECISIONS)} (or unset it)")
        return setting
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    # bf16 instructions are necessary but not sufficient: check once per machine that they pay off here
    return "bf16" if cpu_bf16_flags() and bf16_check()["bf16_faster"] else "fp32"


def _probe_net() -> tuple[torch.nn.Module, torch.Tensor]:
    """A small conv stack and a batch of 64 (channels_last) — the shape of work cnnlab models do on a CPU."""
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
    return net, torch.randn(64, 32, 14, 14).contiguous(memory_format=torch.channels_last)


def probe_step(precision: str = "fp32") -> Callable[[], None]:
    """One training step (forward + backward) of the probe net in `precision`: the workload of the precision check
    and of the thread choice of commands that do not train (evaluate, features, serve, lab, …)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net, x = _probe_net()

    def step() -> None:
        with autocast(torch.device("cpu"), precision):
            loss = net(x).float().square().mean()
        loss.backward()
        net.zero_grad(set_to_none=True)

    return step


def measure(
    variants: dict,
    rounds: int = 3,
    warmup: int = 2,
    block_s: float = 0.05,
    max_block: int = 8,
    give_up: float = 3.0,
    clock: Callable[[], float] = time.perf_counter,
) -> dict:
    """Seconds per call of each variant (name → a callable that does one step its way), measured to be robust.

    - Warm-up: `warmup` calls of each variant are never timed (a cold first step — oneDNN primitives, the OpenMP
      pool of a new thread count — once made one thread look 3× faster than two).
    - Blocks: each timing is the mean over a block of calls lasting about `block_s` at the fastest warm-up's pace
      (at most `max_block` calls, the same number for every variant), so a block averages over the OS scheduler's
      time slices: on a busy machine a multi-thread step is fast when every thread has a core and many times
      slower when one waits, and a single lucky call must not decide.
    - Interleaved rounds: every round times each variant once, in alternating order (A B, B A, A B), so a change of
      load lands on every variant; each variant's figure is its fastest block (the minimum filters other jobs'
      bursts; the block mean already holds the contention the choice is about).
    - A variant whose fastest of two blocks is `give_up` × slower than the best so far is not timed again (after one
      block only, an unlucky burst — a 2-thread block 5× slow while another program started — once decided).
    Runs under a forked RNG: dropout in a step does not move the caller's random stream.
    """
    names = list(variants)
    best: dict = {}
    with torch.random.fork_rng(devices=[]):
        pace = float("inf")
        for name in names:
            for _ in range(warmup):
                start = clock()
                variants[name]()
                pace = min(pace, clock() - start)
        calls = max(1, min(max_block, round(block_s / pace) if 0 < pace < float("inf") else max_block))
        for r in range(rounds):
            for name in names if r % 2 == 0 else reversed(names):
                if r > 1 and best[name] > give_up * min(best.values()):
                    continue
                start = clock()
                for _ in range(calls):
                    variants[name]()
                best[name] = min(best.get(name, float("inf")), (clock() - start) / calls)
    return best


def _precision_times() -> dict[str, float]:
    """ms per probe step in fp32 and in bf16 (see `measure`)."""
    steps = {p: probe_step(p) for p in ("fp32", "bf16")}
    return {p: t * 1e3 for p, t in measure(steps).items()}


def check_file() -> Path | None:
    """Where the measured bf16 check is cached: $CNNLAB_PRECISION_CACHE (a file path; 'off' disables the cache),
    else precision-check.json in $CNNLAB_CACHE or $XDG_CACHE_HOME/cnnlab (default ~/.cache/cnnlab)."""
    return _cache_file("CNNLAB_PRECISION_CACHE", "precision-check.json")


def _cache_file(variable: str, name: str) -> Path | None:
    setting = os.environ.get(variable, "")
    if setting.lower() in ("off", "0", "none", "false"):
        return None
    if setting:
        return Path(setting)
    if os.environ.get("CNNLAB_CACHE"):
        return Path(os.environ["CNNLAB_CACHE"]) / name
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cnnlab" / name


def _read_cache(path: Path | None) -> dict:
    if path is None:
        return {}
    try:
        cached = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return cached if isinstance(cached, dict) else {}


def _write_cache(path: Path | None, entries: dict) -> None:
    if path is None:
        return
    text = json.dumps(entries, indent=2)
    try:  # another process reading the file sees the old one or the new one, whole
        atomic_write(path, lambda tmp: Path(tmp).write_text(text))
    except OSError:
        pass  # a read-only cache only costs the measurement next time


def machine_key() -> str:
    """What a measured choice is a property of: CPU model, instruction set (with oneDNN's cap:
    ONEDNN_MAX_CPU_ISA=AVX2 makes the same CPU another machine) and torch version."""
    return f"{hardware_info(torch.device('cpu'))['cpu']}|{cpu_isa()}|torch {torch.__version__}"


@functools.cache
def bf16_check() -> dict:
    """Whether bf16 autocast trains faster than fp32 on this CPU: measured once (≈ 0.5 s), cached per machine.

    The cache (see `check_file`) is keyed by `machine_key` and the thread count. A property of the hardware, it
    does not expire (the thread choice's cache does: see `choose_threads`).
    """
    key = f"{machine_key()}|{torch.get_num_threads()} threads"
    path = check_file()
    cached = _read_cache(path)
    if key in cached:
        return cached[key]
    times = _precision_times()
    fp32, bf16 = times["fp32"], times["bf16"]
    result = {"fp32_ms": round(fp32, 3), "bf16_ms": round(bf16, 3), "bf16_faster": bf16 < 0.9 * fp32}
    _write_cache(path, {**cached, key: result})
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
    if os.environ.get(PRECISION_ENV, "").strip().lower() in ("fp32", "bf16"):
        return f"{resolved}: {PRECISION_ENV}"
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


# ---- the CPU thread count: one measured choice for every entry point
THREADS_ENV = "CNNLAB_THREADS"  # a whole number ≥ 1: every command and Trainer uses it, nothing is measured
THREADS_TTL_S = 600.0  # how long a measured thread choice is reused (see `choose_threads`)
_START_THREADS = torch.get_num_threads()  # torch's own default when cnnlab started: one per core, or OMP_NUM_THREADS
_PINNED: list[int] = []  # counts set by `use_threads` around the code that runs now (innermost last)


@dataclass(frozen=True)
class ThreadChoice:
    """A thread count and why: `how` is 'asked', CNNLAB_THREADS, 'set by the caller', 'one core', 'measured' or
    'cached'; `times` the seconds per probe step at each count measured (also for a cached choice), `age_s` the
    age of a cached measurement."""

    threads: int
    how: str
    times: dict[int, float] = field(default_factory=dict)
    age_s: float | None = None

    def describe(self, what: str = "a training step") -> str:
        """'threads 2 (measured: a training step took 8.1 ms with 2, 12.9 ms with 1)'."""
        if not self.times:
            return f"threads {self.threads} ({self.how})"
        ms = ", ".join(f"{t * 1e3:.1f} ms with {n}" for n, t in self.times.items())
        when = f" {self.age_s / 60:.0f} min ago" if self.age_s is not None else ""
        return f"threads {self.threads} ({self.how}{when}: {what} took {ms})"


def thread_candidates(most: int | None = None) -> list[int]:
    """The counts to measure, most first: one per core (torch's default), half of that, one."""
    most = most or _START_THREADS
    return sorted({most, max(most // 2, 1), 1}, reverse=True)


def pick_threads(times: dict[int, float], tolerance: float = 0.1) -> int:
    """The most threads whose step time is within `tolerance` of the fastest: more threads unless fewer are
    clearly faster (on a quiet machine never fewer than the fastest; with a busy core one thread wins by 2–3×)."""
    fastest = min(times.values())
    return max(n for n, t in times.items() if t <= (1 + tolerance) * fastest)


def threads_asked(asked: int | None = None) -> ThreadChoice | None:
    """The thread count fixed without measuring: `asked`, else the one `use_threads` set around this call, else
    $CNNLAB_THREADS; None when the count is to be measured."""
    if asked is not None:
        if asked < 1:
            raise ValueError(f"--threads must be ≥ 1, got {asked}")
        return ThreadChoice(asked, "asked for")
    if _PINNED:
        return ThreadChoice(_PINNED[-1], "set by the caller")
    setting = os.environ.get(THREADS_ENV, "").strip()
    if not setting:
        return None
    if not setting.isdigit() or int(setting) < 1:
        raise ValueError(f"{THREADS_ENV}={setting!r}: expected a whole number of threads ≥ 1 (or unset it)")
    return ThreadChoice(int(setting), THREADS_ENV)


def threads_cache_file() -> Path | None:
    """Where measured thread choices are kept: $CNNLAB_THREADS_CACHE (a file path; 'off' disables the cache), else
    threads-check.json beside the precision check's file."""
    return _cache_file("CNNLAB_THREADS_CACHE", "threads-check.json")


def choose_threads(
    step: Callable[[], None] | None = None,
    key: str = "probe",
    asked: int | None = None,
    candidates: list[int] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    now: Callable[[], float] = time.time,
) -> ThreadChoice:
    """Set torch's CPU thread count for the work `step` stands for, and return the choice.

    `asked` (--threads), a count set by `use_threads` around the call, or $CNNLAB_THREADS fix it. Otherwise one
    step of the workload (`step`, e.g. a training step on a copy of the model; default the probe net's) is timed at
    each of `candidates` (default `thread_candidates()`) by `measure`, and `pick_threads` decides. `key` names the
    workload in the cache (model, input, batch, precision): an entry holds its per-thread times and is reused for
    THREADS_TTL_S seconds, since the answer follows the machine's load (docs/architecture.md, "No global side
    effects"). A choice of fewer threads than the most is made only when a second measurement agrees (each
    count's faster time of the two), and is never reused from the cache: the load behind it may have gone, and
    one disturbed probe once held six budget runs in a row at 1 thread, half their speed, for ten minutes.
    `clock` and `now` are injectable for tests.
    """
    fixed = threads_asked(asked)
    if fixed is not None:
        torch.set_num_threads(fixed.threads)
        return fixed
    candidates = candidates or thread_candidates()
    if len(candidates) == 1:
        torch.set_num_threads(candidates[0])
        return ThreadChoice(candidates[0], "one core")
    path, entry = threads_cache_file(), f"{machine_key()}|{key}|{','.join(map(str, candidates))}"
    cached = _read_cache(path)
    hit = cached.get(entry)
    times = {int(n): float(t) for n, t in hit["times"].items()} if isinstance(hit, dict) else {}
    if times and 0 <= now() - hit.get("at", -1e18) < THREADS_TTL_S and pick_threads(times) == max(candidates):
        choice = ThreadChoice(pick_threads(times), "cached", times, now() - hit["at"])
    else:
        step = step or probe_step()

        def at(n: int) -> Callable[[], None]:
            return lambda: (torch.set_num_threads(n), step())

        times = measure({n: at(n) for n in candidates}, clock=clock)
        if pick_threads(times) < max(candidates):  # fewer threads: only if a second measurement agrees
            again = measure({n: at(n) for n in candidates}, clock=clock)
            times = {n: min(t, again[n]) for n, t in times.items()}
        choice = ThreadChoice(pick_threads(times), "measured", times)
        fresh = {k: v for k, v in cached.items() if isinstance(v, dict) and now() - v.get("at", 0) < THREADS_TTL_S}
        _write_cache(path, {**fresh, entry: {"times": times, "threads": choice.threads, "at": now()}})
    torch.set_num_threads(choice.threads)
    return choice


@contextlib.contextmanager
def use_threads(threads: int | None = None) -> Iterator[ThreadChoice]:
    """Run the block on `threads` CPU threads (None: `choose_threads()`'s choice, made now), which every choice made
    inside takes as given (a Trainer's, a lesson's); the caller's count is restored on exit."""
    before = torch.get_num_threads()
    choice = choose_threads(asked=threads)
    _PINNED.append(choice.threads)
    try:
        yield choice
    finally:
        _PINNED.pop()
        torch.set_num_threads(before)
