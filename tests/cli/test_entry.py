"""The `cnnlab` program's exit: the exit code and every line of output arrive, without Python's module teardown
(`cli.entry`), and a command's own running threads are still waited for."""

import subprocess
import sys
import threading

import pytest

from cnnlab import cli
from tests.helpers import subprocess_env


class Exited(Exception):
    pass


def test_a_real_process_keeps_its_output_and_exit_code(tmp_path):
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    with open(out, "w") as o, open(err, "w") as e:  # files, not pipes: block-buffered, so unflushed lines would go
        ok = subprocess.run([sys.executable, "-m", "cnnlab", "models"], stdout=o, stderr=e, env=subprocess_env())
        bad = subprocess.run(
            [sys.executable, "-m", "cnnlab", "models", "nosuch*"], stdout=o, stderr=e, env=subprocess_env()
        )
    assert ok.returncode == 0 and bad.returncode == 2
    lines = out.read_text().splitlines()
    assert len(lines) > 10 and lines[-1].split()[0] == sorted(line.split()[0] for line in lines)[-1]
    assert err.read_text().startswith("cnnlab models: error: no registered model matches 'nosuch*'")


def _recorded(monkeypatch, code, start_thread: bool):
    """What `entry` did after a `main` that returned `code` (and left a thread of its own running, or not); the
    threads other tests of this process left behind are not this command's."""
    calls, ours = [], []
    done = threading.Event()

    def fake_main():
        if start_thread:
            ours.append(threading.Thread(target=lambda: (done.wait(5), calls.append("thread ended"))))
            ours[-1].start()
        return code

    def fake_exit(c):
        calls.append(("os._exit", c))
        raise Exited

    def fake_sys_exit(c):  # the ordinary exit waits for the command's threads
        done.set()
        for t in ours:
            t.join()
        calls.append(("sys.exit", c))
        raise Exited

    monkeypatch.setattr(cli, "main", fake_main)
    monkeypatch.setattr(cli.threading, "enumerate", lambda: [threading.main_thread(), *ours])
    monkeypatch.setattr(cli.os, "_exit", fake_exit)
    monkeypatch.setattr(cli.sys, "exit", fake_sys_exit)
    monkeypatch.setattr(cli.atexit, "_run_exitfuncs", lambda: calls.append("exit handlers"))
    with pytest.raises(Exited):
        cli.entry()
    return calls


def test_exit_handlers_run_then_the_process_ends_with_the_code(monkeypatch):
    assert _recorded(monkeypatch, 3, start_thread=False) == ["exit handlers", ("os._exit", 3)]
    assert _recorded(monkeypatch, None, start_thread=False) == ["exit handlers", ("os._exit", 0)]


def test_a_running_thread_gets_the_ordinary_exit(monkeypatch):
    assert _recorded(monkeypatch, 0, start_thread=True) == ["thread ended", ("sys.exit", 0)]
