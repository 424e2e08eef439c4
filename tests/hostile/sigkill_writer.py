"""`python sigkill_writer.py TARGET[@NAME][#N] ARGS...`: run `cnnlab ARGS` and SIGKILL it in the middle of a write.

TARGET is a writer, dotted (`onnx.save_model`, `numpy.savez_compressed`, `matplotlib.figure.Figure.savefig`,
`pathlib.Path.write_text`). It is replaced by one that lets the real writer write, cuts the file it wrote to half
its length and kills the process with SIGKILL: what a kill or a power cut midway leaves. Only calls whose
destination's name contains NAME count, and the N-th of them (default: the first) is the one killed. A writer that
writes into a temporary file and renames it leaves the old file whole; one that writes the file in place leaves half
of it.
"""

from __future__ import annotations

import functools
import importlib
import os
import runpy
import signal
import sys


def _resolve(dotted: str):
    parts = dotted.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            owner = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for name in parts[i:-1]:
            owner = getattr(owner, name)
        return owner, parts[-1]
    raise SystemExit(f"cannot resolve {dotted}")


def _destination(args: tuple):
    for a in args:
        if isinstance(a, str | os.PathLike) or hasattr(a, "write"):
            return a
    raise SystemExit("the writer was called without a destination")


def _cut_and_kill(dest) -> None:
    if hasattr(dest, "write"):
        dest.flush()
        dest.truncate(max(dest.tell() // 2, 1))
        dest.flush()
    else:
        size = os.path.getsize(dest)
        os.truncate(dest, max(size // 2, 1))
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    spec, args = sys.argv[1], sys.argv[2:]
    spec, _, nth = spec.partition("#")
    dotted, _, name = spec.partition("@")
    owner, attr = _resolve(dotted)
    original = getattr(owner, attr)
    seen = [0]

    @functools.wraps(original)
    def writer(*a, **k):
        result = original(*a, **k)
        dest = _destination(a)
        label = getattr(dest, "name", dest)
        label = os.fspath(label) if isinstance(label, str | os.PathLike) else ""
        if name in label:
            seen[0] += 1
            if seen[0] == int(nth or 1):
                _cut_and_kill(dest)
        return result

    setattr(owner, attr, writer)
    sys.argv = ["cnnlab", *args]
    runpy.run_module("cnnlab", run_name="__main__")


if __name__ == "__main__":
    main()
