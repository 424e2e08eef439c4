"""The matrix-product peak that shares of peak are divided by follows an instruction-set cap."""

from __future__ import annotations

import pytest
import torch
from benchmarks._common import matmul_peak


def test_both_routes_on_the_cpu_as_it_is(monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    peaks = matmul_peak(torch.float32, n=64, reps=1)
    assert set(peaks) == {"matmul", "onednn"} and all(v > 0 for v in peaks.values())


@pytest.mark.parametrize(("mkl_cap", "routes"), [(None, {"onednn"}), ("AVX2", {"matmul", "onednn"})])
def test_a_onednn_cap_leaves_out_mkl_unless_mkl_is_capped_too(monkeypatch, mkl_cap, routes):
    # MKL ignores ONEDNN_MAX_CPU_ISA: its product would be the uncapped CPU's (AVX-512 on an AVX-512 host)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    if mkl_cap:
        monkeypatch.setenv("MKL_ENABLE_INSTRUCTIONS", mkl_cap)
    else:
        monkeypatch.delenv("MKL_ENABLE_INSTRUCTIONS", raising=False)
    assert set(matmul_peak(torch.float32, n=64, reps=1)) == routes
