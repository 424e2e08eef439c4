import json
import platform
import subprocess
import sys

import pytest
import torch

from cnnlab import runtime as precision
from tests.helpers import subprocess_env

_CHECK = precision.bf16_check  # the cached function itself (tests monkeypatch the module attribute)


@pytest.fixture
def fresh_check(monkeypatch, tmp_path):
    """A cold check: not cached in this process, and a cache file of this test's own (not the session's, which
    must never hold the fake timings these tests measure)."""
    monkeypatch.setenv("CNNLAB_PRECISION_CACHE", str(tmp_path / "precision-check.json"))
    _CHECK.cache_clear()
    yield
    _CHECK.cache_clear()


def test_auto_is_fp32_without_bf16_hardware(monkeypatch):
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ())
    assert precision.resolve_precision("auto", torch.device("cpu")) == "fp32"


def test_auto_follows_the_measured_check(fresh_check, monkeypatch):
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ("avx512_bf16",))
    monkeypatch.setattr(precision, "bf16_check", lambda: {"bf16_faster": False})
    assert precision.resolve_precision("auto", torch.device("cpu")) == "fp32"  # flags alone are not enough
    monkeypatch.setattr(precision, "bf16_check", lambda: {"bf16_faster": True})
    assert precision.resolve_precision("auto", torch.device("cpu")) == "bf16"
    assert precision.resolve_precision("fp32", torch.device("cpu")) == "fp32"  # explicit choice wins


def test_check_is_measured_once_and_cached(fresh_check, monkeypatch):
    calls = []
    monkeypatch.setattr(precision, "_precision_times", lambda: calls.append(1) or {"fp32": 10.0, "bf16": 4.0})
    result = precision.bf16_check()
    assert result == {"fp32_ms": 10.0, "bf16_ms": 4.0, "bf16_faster": True} and len(calls) == 1
    cached = json.loads(precision.check_file().read_text())
    assert list(cached.values()) == [result]
    _CHECK.cache_clear()
    assert precision.bf16_check() == result and len(calls) == 1  # read back from the file, not measured again


@pytest.mark.slow
def test_step_timer_runs_both_precisions():
    times = precision._precision_times()
    assert set(times) == {"fp32", "bf16"} and all(t > 0 for t in times.values())


def test_unknown_precision():
    with pytest.raises(ValueError, match="fp32, bf16"):
        precision.resolve_precision("fp16", torch.device("cpu"))


@pytest.mark.slow
def test_cold_check_leaves_the_callers_random_stream_alone(fresh_check, monkeypatch, tmp_path):
    # a cold cache runs the probe; it must not reseed torch's global RNG (a run's --seed drew from it just before)
    monkeypatch.setenv("CNNLAB_PRECISION_CACHE", str(tmp_path / "check.json"))
    torch.manual_seed(1)
    expected = torch.rand(5)
    torch.manual_seed(1)
    precision.bf16_check()
    assert torch.equal(torch.rand(5), expected)


def test_check_cache_path_and_switch(monkeypatch, tmp_path, fresh_check):
    monkeypatch.setenv("CNNLAB_PRECISION_CACHE", "off")
    assert precision.check_file() is None
    monkeypatch.setattr(precision, "_precision_times", lambda: {"fp32": 10.0, "bf16": 9.5})
    assert precision.bf16_check()["bf16_faster"] is False  # measured, nothing written
    monkeypatch.setenv("CNNLAB_PRECISION_CACHE", str(tmp_path / "x.json"))
    assert precision.check_file() == tmp_path / "x.json"


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_reuse_freed_memory_sets_glibc_malloc_unless_the_user_tuned_it():
    """In a fresh process (the setting is process-wide): it takes on glibc; a MALLOC_*_ variable is the user's word."""
    code = "from cnnlab.runtime import reuse_freed_memory; print(reuse_freed_memory())"
    env = {k: v for k, v in subprocess_env().items() if not precision.is_malloc_setting(k)}

    def run(**extra):
        out = subprocess.run([sys.executable, "-c", code], env={**env, **extra}, capture_output=True, text=True)
        return out.stdout.strip()

    assert run() == "True"
    assert run(MALLOC_ARENA_MAX="2") == "False"
    assert run(GLIBC_TUNABLES="glibc.malloc.trim_threshold=0") == "False"
