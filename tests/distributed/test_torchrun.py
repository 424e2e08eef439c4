"""Data-parallel runs under torchrun, 2 processes with gloo on this CPU: two "nodes" through c10d rendezvous give
the weights of one process, one plan and one stop for every rank (time budget, Ctrl-C), a killed rank stops the
others and `--nproc 2 --resume` finishes the run."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cnnlab.run.train import train_run
from cnnlab.train.config import TrainConfig
from tests.conftest import write_fake_idx
from tests.distributed.helpers import TORCHRUN, env, free_port, torchrun, train_args

pytestmark = [
    pytest.mark.skipif(not torch.distributed.is_available(), reason="torch without torch.distributed"),
    pytest.mark.slow,  # torchrun starts two interpreters per run
]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    # 704 training images, 64 held out for validation: 640 = 10 global batches of 64 per epoch
    return write_fake_idx(tmp_path_factory.mktemp("dist-data"), 704, 100)


def _history(run: Path) -> list[dict]:
    with open(run / "history.csv") as f:
        return list(csv.DictReader(f))


def _two_nodes(args: list[str]) -> list[tuple[subprocess.Popen, str]]:
    """Two torchrun "nodes" of one process each meeting at a c10d rendezvous on 127.0.0.1, as on two machines."""
    port = free_port()
    jobs = []
    for node in (0, 1):
        cmd = [
            *TORCHRUN,
            "--nnodes=2",
            "--nproc-per-node=1",
            f"--node-rank={node}",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint=127.0.0.1:{port}",
            "--rdzv-id=cnnlab-test",
            *args,
        ]
        jobs.append(subprocess.Popen(cmd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return [(j, j.communicate(timeout=240)[1]) for j in jobs]


def test_two_nodes_of_32_equal_one_process_of_64(data, tmp_path):
    """fp32, fixed seed, no BatchNorm: 20 steps of 2 ranks × 32 (two c10d "nodes") give the weights and history
    of 1 × 64. The ranks are true subprocesses (torchrun); the reference run is in this process."""
    common = dict(epochs=2, batch_size=64, val_split=64, optimizer="sgd", lr=0.05)
    threads = torch.get_num_threads()
    try:  # the reference in this process: one interpreter less to start
        train_run(
            TrainConfig(
                data="fashion-mnist",
                data_dir=str(data),
                model="lenet5",
                precision="fp32",
                threads=1,
                verbose=0,
                out=str(tmp_path / "one"),
                **common,
            ),
            log=lambda *_: None,
        )
    finally:
        torch.set_num_threads(threads)
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in common.items()]
    results = _two_nodes(train_args(data, tmp_path / "two", *flags))
    assert [j.returncode for j, _ in results] == [0, 0], [err[-2000:] for _, err in results]
    a, b = load_file(tmp_path / "one" / "model.safetensors"), load_file(tmp_path / "two" / "model.safetensors")
    diff = max((a[k] - b[k]).abs().max().item() for k in a)
    print(f"max abs weight difference after 20 steps: {diff:.3g}")
    assert diff < 1e-5
    h1, h2 = _history(tmp_path / "one"), _history(tmp_path / "two")
    assert len(h1) == len(h2) == 2
    for r1, r2 in zip(h1, h2, strict=True):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
            assert float(r1[key]) == pytest.approx(float(r2[key]), abs=1e-5), key
    m1, m2 = (json.loads((tmp_path / r / "metrics.json").read_text()) for r in ("one", "two"))
    assert (m1["world_size"], m2["world_size"], m2["steps"]) == (1, 2, 20)
    assert m1["test_accuracy"] == pytest.approx(m2["test_accuracy"], abs=1e-6)
    assert not any((tmp_path / "two").glob("*rank*"))  # rank 1 wrote nothing of its own


def test_a_time_budget_is_one_plan_and_one_stop_for_every_rank(data, tmp_path):
    """The budget's plan (when, how many steps) is agreed, so the LR schedule is the same on every rank and every
    rank stops at the planned step; the hard stop by the clock is agreed like every stop. A true subprocess
    (torchrun). --epochs 1000: the budget ends the run on any machine, fast or loaded; which of its two stops ends
    it depends on the machine's speed, and each is checked when it is the one."""
    out = tmp_path / "run"
    r = torchrun(
        2,
        train_args(
            data,
            out,
            "--batch-size",
            "32",
            "--time-budget",
            "12s",
            "--epochs",
            "1000",
            "--optimizer",
            "sgd",
            "--lr",
            "0.05",
            "--schedule",
            "onecycle",
        ),
    )
    assert r.returncode == 0, r.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and "time budget" in metrics["stop_reason"]
    plan = metrics["time_budget"]
    if "planned steps are done" in metrics["stop_reason"]:  # (a loaded machine may reach the deadline first)
        assert plan["steps"] == metrics["steps"]
        assert float(_history(out)[-1]["lr"]) == pytest.approx(0.05 / 25 / 1e4, rel=0.05)  # one-cycle's end


def _rank_pid(parent: int, rank: int) -> int | None:
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (proc / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and f"RANK={rank}".encode() in environ:
            return int(proc.name)
    return None


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the rank's process through /proc")
def test_a_killed_rank_stops_the_others_and_resume_finishes(data, tmp_path):
    """SIGKILL of rank 1 (a true subprocess: torchrun): rank 0 stops with one line naming the lost peer instead of
    hanging in a collective (bounded by CNNLAB_DIST_TIMEOUT=20 s; how long it took is printed, not asserted: a
    loaded machine is slower), and `--nproc 2 --resume` finishes the run."""
    out = tmp_path / "run"
    cmd = [
        *TORCHRUN,
        "--standalone",
        "--nproc-per-node=2",
        *train_args(data, out, "--epochs", "400", "--batch-size", "32", "--checkpoint-every", "5"),
    ]
    job = subprocess.Popen(cmd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300  # a hang guard, not a speed check
        while not (out / "history.csv").exists() or not (out / "history.csv").read_text().count("\n") >= 2:
            assert job.poll() is None and time.time() < deadline, job.communicate()[1][-3000:]
            time.sleep(0.2)
        victim = _rank_pid(job.pid, 1)
        assert victim is not None
        killed = time.time()

        os.kill(victim, signal.SIGKILL)
        _, err = job.communicate(timeout=240)  # a hang guard: a job that never ends fails here
        stopped = time.time() - killed
    finally:
        if job.poll() is None:
            job.kill()
    print(f"the job ended {stopped:.1f} s after SIGKILL of rank 1")
    assert job.returncode != 0
    assert "rank 0: another process of this distributed run stopped" in err
    assert f"--resume {out}" in err
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["world_size"] == 2 and state["step"] > 0
    done = state["epoch"] + 2  # finish the epoch in progress and one more
    r = subprocess.run(
        [sys.executable, "-m", "cnnlab", "train", "--resume", str(out), "--epochs", str(done), "--nproc", "2"],
        env=env(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert r.returncode == 0, r.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["resumed"] and metrics["epochs"] == done and metrics["world_size"] == 2


def test_ctrl_c_stops_every_rank_at_one_step_and_rank_0_saves(data, tmp_path):
    """Ctrl-C reaches torchrun and both ranks (one process group, as in a terminal): one agreed stop, a checkpoint
    of that step, and rank 0's run folder. A true subprocess: SIGINT to torchrun's process group."""
    out = tmp_path / "run"
    cmd = [*TORCHRUN, "--standalone", "--nproc-per-node=2", *train_args(data, out, "--epochs", "400")]
    job = subprocess.Popen(
        cmd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        deadline = time.time() + 300  # a hang guard, not a speed check
        while not (out / "history.csv").exists() or (out / "history.csv").read_text().count("\n") < 2:
            assert job.poll() is None and time.time() < deadline, job.communicate()[1][-3000:]
            time.sleep(0.2)
        os.killpg(job.pid, signal.SIGINT)
        job.communicate(timeout=60)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["interrupted"] and "interrupted (Ctrl-C)" in metrics["stop_reason"]
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["step"] == metrics["steps"] and len(state["ranks"]) == 2
