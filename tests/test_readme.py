"""README.md cannot rot: every `cnnlab …` command of its ```bash blocks and every ```python snippet is run, in the
order the page gives them, in a temporary folder, on the real Fashion-MNIST (skipped when it is not installed).

Quick mode: `CNNLAB_QUICK=1` caps `cnnlab train` to one short epoch (see cnnlab/cli/train.py); the few commands
that would still take long are rewritten here (QUICK_REWRITES), and the commands that cannot run in a test are
skipped for a reason written next to them (SKIP_PROGRAMS, SKIP_VERBS). A command the page gains that fits neither
is run as written, so a new section is tested by default. A block that cannot run in a test at all is marked in
README.md, invisibly, by an HTML comment on the line before its fence:

    <!-- readme-test: skip (starts a server that runs until stopped) -->

and a python snippet that imports an optional package that is not installed is skipped, naming the package.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import run_cli

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# programs other than cnnlab that appear in the bash blocks, and why the test does not run them
SKIP_PROGRAMS = {
    "source": "activates the virtual environment; the test runs in its own interpreter",
    "bash": "scripts/main.sh and scripts/test.sh install and train for minutes (the main job and the test suite)",
    "pip": "installs packages",
    "curl": "talks to a running server",
    "python": "benchmark scripts run for minutes",
}
# cnnlab verbs the test does not run: verb → (module that must be importable to run it, or None: never; why)
SKIP_VERBS = {
    "serve": (None, "starts a web server that runs until it is stopped"),
    "export": ("onnx", "needs the deploy extra (pip install 'cnnlab[deploy]')"),
    "deploy": ("onnx", "needs the deploy extra (pip install 'cnnlab[deploy]')"),
    "bench": ("onnxruntime", "needs the deploy extra (pip install 'cnnlab[deploy]')"),
    "features": (None, "computes the CNN codes of a whole dataset with a pretrained network"),
}
# quick mode for commands whose cost is not training (CNNLAB_QUICK caps that): pattern → replacement
QUICK_REWRITES = (
    (r"(cnnlab explain \S+ maximize .*)", r"\1 --steps 16"),  # 256 gradient-ascent steps per channel by default
    (r"(cnnlab explain \S+ patches .*)", r"\1 --n 2000"),  # searches 10,000 test images by default
    (r"(cnnlab explain \S+ embedding .*)--n \d+", r"\1--n 100"),  # t-SNE of 2,000 codes
    (r"^(cnnlab lab (?!list)\S+)", r"\1 --quick"),  # the lessons that train take minutes on Fashion-MNIST
    (r"(cnnlab bench .*)", r"\1 --quick"),  # hundreds of timed calls per engine and the whole test set
)
PYTHON_REWRITES = ((r"\bepochs=\d+", 'epochs=1, max_train_samples=2000, time_limit="3s"'),)


@dataclass
class Command:
    kind: str  # "bash" (one command line) or "python" (a whole snippet)
    text: str
    line: int  # line of README.md where it starts
    skip: str | None = None  # the reason of a `<!-- readme-test: skip (reason) -->` mark on its block

    @property
    def where(self) -> str:
        return f"README.md:{self.line}"


SKIP_MARK = re.compile(r"<!--\s*readme-test:\s*skip\s*\(?(.*?)\)?\s*-->")


def readme_blocks(text: str) -> list[tuple[str, str, int, str | None]]:
    """(language, body, first body line, skip reason or None) of each fenced block."""
    out, lang, body, start, mark, previous = [], None, [], 0, None, ""
    for i, line in enumerate(text.splitlines(), 1):
        fence = re.match(r"^\s*```(\S*)", line)
        if fence and lang is None:
            found = SKIP_MARK.search(previous)
            lang, body, start, mark = (
                fence.group(1) or "text",
                [],
                i + 1,
                (found.group(1) or "marked") if found else None,
            )
        elif fence:
            out.append((lang, "\n".join(body), start, mark))
            lang = None
        elif lang is not None:
            body.append(line)
        if line.strip():
            previous = line
    return out


def readme_commands(text: str) -> list[Command]:
    """The bash command lines (comments dropped, continuations joined) and the python snippets, in page order."""
    commands = []
    for lang, body, start, mark in readme_blocks(text):
        if lang == "python":
            commands.append(Command("python", body, start, mark))
        elif lang in ("bash", "sh", "shell", "console"):
            pending, first = "", start
            for offset, raw in enumerate(body.splitlines()):
                line = raw.strip()
                if lang == "console":  # only the prompted lines are commands
                    if not line.startswith("$ "):
                        continue
                    line = line[2:]
                if not pending:
                    first = start + offset
                if line.endswith("\\"):
                    pending += line[:-1] + " "
                    continue
                line, pending = (pending + line).strip(), ""
                line = re.sub(r"\[(-[^\]]*)\]", r"\1", line)  # `[--layer features.3]`: run with the option
                words = shlex.split(line, comments=True)
                if words:
                    commands.append(Command("bash", shlex.join(words), first, mark))
    return commands


def skip_reason(cmd: Command) -> str | None:
    """Why the test does not run `cmd`, or None when it runs it."""
    if cmd.skip:
        return f"marked in README.md: {cmd.skip}"
    if cmd.kind == "python":
        return None
    words = shlex.split(cmd.text)
    if words[0] != "cnnlab":
        return SKIP_PROGRAMS.get(words[0], None) or f"unknown program '{words[0]}': add it to SKIP_PROGRAMS or run it"
    verb = next((w for w in words[1:] if not w.startswith("-")), None)
    if verb in SKIP_VERBS:
        module, why = SKIP_VERBS[verb]
        if module is None or importlib.util.find_spec(module) is None:
            return why
    return None


def quick(cmd: Command) -> str:
    """The command as the test runs it: QUICK_REWRITES applied (optional `[...]` parts were included on reading)."""
    if cmd.kind == "python":
        text = cmd.text
        for pattern, repl in PYTHON_REWRITES:
            text = re.sub(pattern, repl, text)
        return text
    text = cmd.text
    for pattern, repl in QUICK_REWRITES:
        text = re.sub(pattern, repl, text)
    return text


def test_extractor_reads_blocks_comments_and_continuations():
    text = "\n".join(
        [
            "```bash",
            "source .venv/bin/activate",
            "cnnlab train --epochs 5 \\",
            "    --out runs/x        # trains",
            "cnnlab explain runs/x filters [--layer features.3]",
            "cnnlab serve runs/x",
            "```",
            "```",
            "cnnlab summary: error: not a command",
            "```",
            "```python",
            "cfg = TrainConfig(epochs=5)",
            "```",
            "<!-- readme-test: skip (starts a server) -->",
            "",
            "```bash",
            "cnnlab train --out runs/y",
            "```",
        ]
    )
    cmds = readme_commands(text)
    assert [c.text for c in cmds] == [
        "source .venv/bin/activate",
        "cnnlab train --epochs 5 --out runs/x",
        "cnnlab explain runs/x filters --layer features.3",
        "cnnlab serve runs/x",
        "cfg = TrainConfig(epochs=5)",
        "cnnlab train --out runs/y",
    ]
    assert [c.line for c in cmds] == [2, 3, 5, 6, 12, 17]
    assert quick(cmds[2]) == "cnnlab explain runs/x filters --layer features.3"
    assert "max_train_samples=2000" in quick(cmds[4])
    reasons = [skip_reason(c) for c in cmds]
    assert reasons[0] and reasons[1] is None and reasons[2] is None and "server" in reasons[3]
    assert reasons[4] is None and reasons[5] == "marked in README.md: starts a server"


def test_readme_files_exist():
    """Every input file a README command names (an image, a recipe) is in the repository."""
    for cmd in readme_commands(README.read_text()):
        if cmd.kind != "bash" or skip_reason(cmd):
            continue
        for word in shlex.split(quick(cmd)):
            if re.search(r"\.(png|jpe?g|ya?ml|toml)$", word) and not word.startswith(("runs/", "-")):
                assert (ROOT / word).exists(), f"{cmd.where}: {word} does not exist (`{cmd.text}`)"


def _run_cnnlab(argv: list[str]) -> tuple[int, str]:
    """`cnnlab ARGV` in this process (tests/helpers.py: no interpreter start per command): exit code and output."""
    proc = run_cli(*argv, code=None)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.slow
@pytest.mark.fashion
def test_readme_runs_as_written(fashion_dir, tmp_path, monkeypatch, default_threads):
    monkeypatch.setenv("CNNLAB_QUICK", "1")
    monkeypatch.setenv("CNNLAB_PRECISION_CACHE", "off")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "examples").symlink_to(ROOT / "examples")  # the sample images, as from the repository root
    commands = readme_commands(README.read_text())
    assert sum(c.kind == "bash" for c in commands) >= 10 and any(c.kind == "python" for c in commands)
    failures, skipped, timings = [], [], []
    for cmd in commands:
        reason = skip_reason(cmd)
        if reason:
            skipped.append(f"{cmd.where} `{cmd.text}`: {reason}")
            continue
        text, t0 = quick(cmd), time.perf_counter()
        if cmd.kind == "python":
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    exec(compile(text, cmd.where, "exec"), {"__name__": "__readme__"})
                rc, out = 0, ""
            except ModuleNotFoundError as e:
                if e.name and e.name.split(".")[0] != "cnnlab":  # an optional extra that is not installed
                    skipped.append(f"{cmd.where} python snippet: needs {e.name}, which is not installed")
                    continue
                rc, out = 1, f"{type(e).__name__}: {e}"
            except Exception as e:  # noqa: BLE001 - reported below with the snippet's place
                rc, out = 1, f"{type(e).__name__}: {e}"
        else:
            rc, out = _run_cnnlab(shlex.split(text)[1:])
        timings.append(f"{time.perf_counter() - t0:5.1f} s  {text[:90]}")
        if rc != 0:
            failures.append(f"{cmd.where} `{text}` exited {rc}:\n{out[-2000:]}")
    print("\n".join(["skipped:", *skipped, "timings:", *timings]))
    assert not failures, "\n\n".join(failures)
    assert (tmp_path / "runs/lenet5/model.safetensors").exists() and (tmp_path / "runs/lenet5-py").is_dir()
