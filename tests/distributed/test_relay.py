"""`cnnlab train --nproc N` relays its processes' stderr without torchrun's own failure report, wherever torch is
installed (torchrun names its source files relative to the working folder when torch is below it, as in a
project's .venv)."""

from __future__ import annotations

import io

import pytest

from cnnlab.cli.train import _relay

ERROR = "cnnlab train: error: data/c1/0533.png: deleted while the run was reading the folder\n"


@pytest.mark.parametrize(
    "where",
    [
        "torch/distributed/elastic/multiprocessing/api.py",
        ".venv/lib/python3.11/site-packages/torch/distributed/elastic/multiprocessing/api.py",
        "/opt/venv/lib/python3.11/site-packages/torch/distributed/elastic/multiprocessing/api.py",
    ],
)
def test_torchruns_report_is_left_out_wherever_torch_is(where):
    report = [
        f"W1206 12:38:09.045000 28799 {where}:1028] Sending process 28805 closing signal SIGTERM\n",
        f"E1206 12:38:09.121000 28799 {where}:1002] failed (exitcode: 2) local_rank: 0 (pid: 28804) of binary: x\n",
        "Traceback (most recent call last):\n",
        "torch.distributed.elastic.multiprocessing.errors.ChildFailedError:\n",
        "cnnlab FAILED\n",
    ]
    out = io.StringIO()
    errors = _relay([ERROR, *report, "cnnlab train: error: another process stopped\n"], out)
    assert out.getvalue() == ERROR and errors == [ERROR]
