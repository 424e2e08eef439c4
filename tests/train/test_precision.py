import json

import pytest
import torch

from cnnlab.train import precision

_CHECK = precision.bf16_check  # the cached function itself (tests monkeypatch the module attribute)


@pytest.fixture
def fresh_check():
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
    monkeypatch.setattr(precision, "_step_ms", lambda p, reps=4: calls.append(p) or {"fp32": 10.0, "bf16": 4.0}[p])
    result = precision.bf16_check()
    assert result == {"fp32_ms": 10.0, "bf16_ms": 4.0, "bf16_faster": True} and calls == ["fp32", "bf16"]
    cached = json.loads(precision._check_file().read_text())
    assert list(cached.values()) == [result]
    _CHECK.cache_clear()
    assert precision.bf16_check() == result and len(calls) == 2  # read back from the file, not measured again


def test_step_timer_runs_both_precisions():
    assert precision._step_ms("fp32", reps=1) > 0 and precision._step_ms("bf16", reps=1) > 0


def test_unknown_precision():
    with pytest.raises(ValueError, match="fp32, bf16"):
        precision.resolve_precision("fp16", torch.device("cpu"))
