"""The deployment tests need the deploy extra; their trained run is `toy_run` (tests/conftest.py)."""

from __future__ import annotations

import contextlib
import io

import pytest

pytest.importorskip("onnxruntime", reason="the deploy extra is not installed: pip install 'cnnlab[deploy]'")
pytest.importorskip("onnxscript", reason="the deploy extra is not installed: pip install 'cnnlab[deploy]'")


def run_cli(*args, code: int = 0) -> tuple[str, str]:
    """(stdout, stderr) of `cnnlab ARGS` run in this process: no interpreter and torch start-up per call, which keeps
    the deploy tests light (tests/test_cli.py covers the real `python -m cnnlab` entry point)."""
    from cnnlab.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in args])
    assert rc == code, f"cnnlab {' '.join(map(str, args))} returned {rc}, not {code}:\n{err.getvalue()}"
    return out.getvalue(), err.getvalue()
