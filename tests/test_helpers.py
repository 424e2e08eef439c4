"""tests/helpers.py: `run_cli` behaves as a `python -m cnnlab` subprocess does, and leaves this process as it was."""

import os
import random
import signal
import sys
import warnings

import numpy as np
import pytest
import torch

from tests.helpers import process_state_kept, run_cli


def _state() -> dict:
    return {
        "threads": torch.get_num_threads(),
        "dtype": torch.get_default_dtype(),
        "grad": torch.is_grad_enabled(),
        "torch_rng": torch.get_rng_state(),
        "numpy_rng": np.random.get_state()[1].tolist(),
        "random": random.getstate(),
        "filters": list(warnings.filters),
        "showwarning": warnings.showwarning,
        "formatwarning": warnings.formatwarning,
        "cwd": os.getcwd(),
        "environ": dict(os.environ),
        "sigint": signal.getsignal(signal.SIGINT),
        "sigterm": signal.getsignal(signal.SIGTERM),
    }


def _same(a: dict, b: dict) -> None:
    for key in a:
        if isinstance(a[key], torch.Tensor):
            assert torch.equal(a[key], b[key]), key
        else:
            assert a[key] == b[key], key


@pytest.mark.slow
def test_a_training_command_leaves_the_process_as_it_was(fake_idx, tmp_path):
    torch.manual_seed(5)
    before = _state()
    threads = 2 if torch.get_num_threads() == 1 else 1
    out = run_cli(
        "train",
        "--data-dir",
        fake_idx,
        "--epochs",
        1,
        "--max-train-samples",
        64,
        "--threads",
        threads,
        "--precision",
        "fp32",
        "--out",
        tmp_path / "run",
        env={"CNNLAB_TEST_ONLY": "1"},
    )
    assert out.returncode == 0 and "test accuracy" in out.stdout and f", {threads} thread" in out.stdout
    _same(before, _state())
    assert "CNNLAB_TEST_ONLY" not in os.environ


def test_what_a_command_changes_is_put_back(tmp_path):
    before = _state()
    with process_state_kept():
        torch.set_num_threads(1 if torch.get_num_threads() > 1 else 2)
        torch.set_default_dtype(torch.float64)
        torch.manual_seed(123)
        np.random.seed(1)
        random.seed(1)
        warnings.simplefilter("error")
        warnings.formatwarning = lambda *a, **k: "x"
        os.chdir(tmp_path)
        os.environ["CNNLAB_TEST_ONLY"] = "1"
        signal.signal(signal.SIGTERM, lambda *a: None)
        sys.argv.append("--extra")
    _same(before, _state())


def test_exit_codes_and_output():
    import cnnlab

    assert run_cli("--version").stdout.strip() == f"cnnlab {cnnlab.__version__}"
    bad = run_cli("train", "--epochs", "2.5", code=2)
    assert bad.stdout == "" and "argument --epochs: invalid int value: '2.5'" in bad.stderr
    assert run_cli("models", "nosuch*", code=None).returncode == 2
    with pytest.raises(AssertionError, match=r"cnnlab models nosuch\* returned 2, not 0"):
        run_cli("models", "nosuch*")


def test_warnings_are_printed_on_the_commands_stderr(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (12, 28, 28), dtype=np.uint8)
    y = (np.arange(12) % 3).astype(np.float32)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y, x_test=x, y_test=y)
    for _ in range(2):  # shown each time, as by a new process (not once per process)
        out = run_cli("augment", "--data", f"npz:{tmp_path / 'd.npz'}", "--n", 4, "--out", tmp_path / "a.png")
        assert "warning: " in out.stderr and "stores labels as float32" in out.stderr, out.stderr


def test_a_crash_is_raised_with_the_commands_output(monkeypatch):
    from cnnlab.cli import models

    def crash(args):
        print("half-way")
        raise RuntimeError("a bug")

    monkeypatch.setattr(models, "cmd_models", crash)
    with pytest.raises(RuntimeError, match="a bug") as e:
        run_cli("models")
    assert "half-way" in "\n".join(e.value.__notes__)
