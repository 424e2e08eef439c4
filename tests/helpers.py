"""`run_cli`: `cnnlab ARGS` run in this process, as the console script runs it, for the whole suite.

One interpreter and one torch start-up serve every CLI test. A command may change what a process holds globally
(`cnnlab.cli.main` sets the warnings filter and `warnings.formatwarning`, training sets torch's thread count and
seeds its random stream, a distributed run installs signal handlers); `run_cli` puts all of it back, so a test
sees the process as it was before the command, exactly as after a `python -m cnnlab` subprocess. A few tests must
still start a real process (Ctrl-C, SIGKILL, torchrun, a memory limit, what a fresh interpreter imports); each
says why in its docstring.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import signal
import sys
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

SRC = str(Path(__file__).resolve().parents[1] / "src")


class CliResult(NamedTuple):
    """What a `cnnlab` command left: its exit code and its output (the names of subprocess.CompletedProcess)."""

    returncode: int
    stdout: str
    stderr: str


def _signals() -> list[signal.Signals]:
    return [s for s in signal.valid_signals() if s not in (signal.SIGKILL, signal.SIGSTOP)]


@contextlib.contextmanager
def process_state_kept() -> Iterator[None]:
    """Restore on exit what a command may change in this process: warnings (filters, showwarning, formatwarning),
    torch's thread count, default dtype, grad mode, float32 matmul precision, deterministic and anomaly modes, the
    random streams of torch, numpy and `random`, the environment, the working folder, sys.argv, sys.path and
    signal handlers."""
    handlers = {s: signal.getsignal(s) for s in _signals()}
    environ = dict(os.environ)
    cwd = os.getcwd()
    argv, path = list(sys.argv), list(sys.path)
    threads, dtype = torch.get_num_threads(), torch.get_default_dtype()
    grad, matmul = torch.is_grad_enabled(), torch.get_float32_matmul_precision()
    deterministic = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    anomaly = torch.is_anomaly_enabled()
    rng = (torch.get_rng_state(), np.random.get_state(), random.getstate())
    formatwarning = warnings.formatwarning
    try:
        with warnings.catch_warnings():  # filters and showwarning come back on exit
            yield
    finally:
        warnings.formatwarning = formatwarning
        torch.set_rng_state(rng[0])
        np.random.set_state(rng[1])
        random.setstate(rng[2])
        torch.set_anomaly_enabled(anomaly)
        torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])
        torch.set_float32_matmul_precision(matmul)
        torch.set_grad_enabled(grad)
        torch.set_default_dtype(dtype)
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        sys.argv[:], sys.path[:] = argv, path
        os.chdir(cwd)
        if dict(os.environ) != environ:
            for key in set(os.environ) - set(environ):
                del os.environ[key]
            os.environ.update(environ)
        for sig, handler in handlers.items():
            if signal.getsignal(sig) is not handler and handler is not None:  # None: set outside Python
                signal.signal(sig, handler)


def _show_on_stderr(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings printed as a process prints them (pytest would otherwise record them instead of showing them)."""
    (file or sys.stderr).write(warnings.formatwarning(message, category, filename, lineno, line))


def run_cli(*args, code: int | None = 0, env: Mapping[str, str] | None = None) -> CliResult:
    """`cnnlab ARGS` in this process: exit code, stdout and stderr, with this process's global state put back.

    code: the exit code the command must return (an AssertionError with its stderr otherwise); None: any.
    env: environment variables set for the command only. An exception that escapes `main` (a crash, which a
    subprocess would show as a traceback) is raised with the command's output attached as a note.
    """
    from cnnlab.cli import main

    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    with process_state_kept():
        os.environ.update(env or {})
        warnings.showwarning = _show_on_stderr
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    rc = main(argv)
                except SystemExit as e:  # argparse: --help, --version, a bad flag
                    rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
                    if not isinstance(e.code, int | None):
                        print(e.code, file=sys.stderr)
        except BaseException as e:
            e.add_note(f"cnnlab {' '.join(argv)}\nstdout:\n{out.getvalue()}\nstderr:\n{err.getvalue()}")
            raise
    result = CliResult(rc or 0, out.getvalue(), err.getvalue())
    if code is not None and result.returncode != code:
        raise AssertionError(
            f"cnnlab {' '.join(argv)} returned {result.returncode}, not {code}:\n{result.stderr[-3000:]}"
        )
    return result


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment of a test that must start a real `python -m cnnlab` process: this one's, with this
    checkout's src/ first on PYTHONPATH (the cnnlab under test, not another one installed), plus `extra`."""
    path = os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, **extra}
