"""README.md cannot rot: every command of its ```bash / ```console blocks and every ```python snippet is run, in
the order the page gives them, in a temporary folder, on the real Fashion-MNIST (skipped when it is not installed),
and what each prints is checked against the output the page shows.

Output forms: the lines under a `$ command` of a ```console block, and the ```text block right after a ```python
snippet, are what the command prints. Each shown line must match an output line, in order (other lines may come
between): `…` stands for anything, a number for any number, a Fashion-MNIST class name for any class name, and runs
of spaces for any spaces (`output_pattern`); a line that is only `…` says that more lines follow.

Quick mode: `CNNLAB_QUICK=1` caps `cnnlab train` to one short epoch (see cnnlab/cli/train.py), and the Python API's
training calls get the same caps here (`_quick_api`); the few commands that would still take long are rewritten
(QUICK_REWRITES), and the commands that cannot run in a test are skipped for a reason written next to them
(SKIP_PROGRAMS, SKIP_VERBS). A command the page gains that fits neither is run as written, so a new section is
tested by default. A block is marked in README.md, invisibly, by an HTML comment on the line before its fence:

    <!-- readme-test: skip (installs packages and trains for minutes) -->
    <!-- readme-test: background (a server: …) -->

`skip`: not run (the reason is printed). `background`: a server (`cnnlab serve`) started as a process on a free
port (`--port 0`) once its address line is printed, kept for the commands after it (`curl localhost:8000/…` is sent
to its port) and stopped at the end. A python snippet that imports an optional package that is not installed is
skipped, naming the package.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import run_cli, subprocess_env

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# programs other than cnnlab that appear in the bash blocks, and why the test does not run them
SKIP_PROGRAMS = {
    "source": "activates the virtual environment; the test runs in its own interpreter",
    "bash": "scripts/main.sh and scripts/test.sh install and train for minutes (the main job and the test suite)",
    "pip": "installs packages",
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
    (r"(cnnlab datasets make .*--n )\d+", r"\g<1>300"),  # tens of thousands of scenes, a minute or more to draw
)
SERVER_WAIT_S = 120  # a busy 2-core machine may take this long to import torch and load the models


def _fashion_classes() -> tuple[str, ...]:
    from cnnlab.data.catalog import FASHION_CLASSES

    return FASHION_CLASSES


@dataclass
class Command:
    kind: str  # "bash" (one command line) or "python" (a whole snippet)
    text: str
    line: int  # line of README.md where it starts
    skip: str | None = None  # the reason of a `<!-- readme-test: skip (reason) -->` mark on its block
    background: bool = False  # marked `<!-- readme-test: background (…) -->`: a server, kept running
    expected: list[str] = field(default_factory=list)  # the output lines the page shows for it

    @property
    def where(self) -> str:
        return f"README.md:{self.line}"


MARK = re.compile(r"<!--\s*readme-test:\s*(skip|background)\s*\(?(.*?)\)?\s*-->")


def readme_blocks(text: str) -> list[tuple[str, str, int, str | None]]:
    """(language, body, first body line, mark or None) of each fenced block; the mark is the reason of a `skip`
    mark, or "background" for a `background` mark."""
    out, lang, body, start, mark, previous = [], None, [], 0, None, ""
    for i, line in enumerate(text.splitlines(), 1):
        fence = re.match(r"^\s*```(\S*)", line)
        if fence and lang is None:
            found = MARK.search(previous)
            if found:
                mark = "background" if found.group(1) == "background" else (found.group(2) or "marked")
            else:
                mark = None
            lang, body, start = fence.group(1) or "text", [], i + 1
        elif fence:
            out.append((lang, "\n".join(body), start, mark))
            lang = None
        elif lang is not None:
            body.append(line)
        if line.strip():
            previous = line
    return out


def readme_commands(text: str) -> list[Command]:
    """The bash command lines (comments dropped, continuations joined) and the python snippets, in page order, each
    with the output the page shows for it (a console block's lines under it; the text block after a snippet)."""
    commands: list[Command] = []
    last_lang = None
    for lang, body, start, mark in readme_blocks(text):
        skip, background = (None, True) if mark == "background" else (mark, False)
        if lang == "python":
            commands.append(Command("python", body, start, skip, background))
        elif lang == "text" and last_lang == "python":  # what the snippet above prints
            commands[-1].expected = [line for line in body.splitlines() if line.strip()]
        elif lang in ("bash", "sh", "shell", "console"):
            pending, first = "", start
            for offset, raw in enumerate(body.splitlines()):
                line = raw.strip()
                if lang == "console":  # the prompted lines are commands, the others their output
                    if not line.startswith("$ "):
                        if line and commands and commands[-1].line >= start:
                            commands[-1].expected.append(raw.rstrip())
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
                    commands.append(Command("bash", shlex.join(words), first, skip, background))
        last_lang = lang
    return commands


NUMBER = r"[-+]?\d+(?:,\d{3})*(?:\.\d+)?(?:e[-+]?\d+)?"  # 8, 0.8903, 55,000, 1e-3


def output_pattern(line: str, classes: tuple[str, ...] = ()) -> re.Pattern:
    """The form of a shown output line: `…` is anything, a number any number, a class name any class name, a
    precision any precision (the README's output is from an fp32 CPU; `precision auto` picks bf16 where it pays),
    spaces any spaces, a counted noun after a number in the singular or plural ("5 epochs" matches "1 epoch"); the
    rest as written."""
    names = "|".join(re.escape(c) for c in sorted(classes, key=len, reverse=True))
    token = re.compile(
        rf"(?P<any>…)|(?P<prec>\b{PRECISIONS}\b)|(?P<num>{NUMBER})|(?P<space>\s+)"
        + (f"|(?P<cls>{names})" if names else "")
    )
    parts, at = [], 0
    for m in token.finditer(line.strip()):
        parts.append(re.escape(line.strip()[at : m.start()]))
        kind = m.lastgroup
        parts.append({"any": ".*", "num": NUMBER, "space": r"\s+", "prec": rf"\b{PRECISIONS}\b"}.get(kind, names))
        if kind == "cls":
            parts[-1] = f"(?:{names})"
        at = m.end()
    parts.append(re.escape(line.strip()[at:]))
    pattern = "".join(parts)
    counted = rf"({re.escape(NUMBER)}\\s\+)({'|'.join(COUNTED)})s?\b"
    return re.compile(re.sub(counted, lambda m: rf"{m.group(1)}{m.group(2)}s?\b", pattern))


COUNTED = ("epoch", "step", "thread", "sample", "image", "file")  # nouns whose plural follows the number
PRECISIONS = "(?:fp32|bf16|fp16)"  # what `precision auto` may print in a shown line


def missing_output(expected: list[str], output: str, classes: tuple[str, ...] = ()) -> list[str]:
    """The shown lines that the output does not have, in order (each matched by a later line than the one before)."""
    lines = [line.strip() for line in output.splitlines()]
    missing, at = [], 0
    for shown in expected:
        if shown.strip() in ("", "…"):
            continue
        pattern = output_pattern(shown, classes)
        found = next((i for i in range(at, len(lines)) if pattern.fullmatch(lines[i])), None)
        if found is None:
            missing.append(shown)
        else:
            at = found + 1
    return missing


def skip_reason(cmd: Command) -> str | None:
    """Why the test does not run `cmd`, or None when it runs it."""
    if cmd.skip:
        return f"marked in README.md: {cmd.skip}"
    if cmd.kind == "python":
        return None
    words = shlex.split(cmd.text)
    if words[0] == "curl":  # sent to the server a `background` block started
        return None if shutil.which("curl") else "curl is not installed"
    if words[0] != "cnnlab":
        return SKIP_PROGRAMS.get(words[0], None) or f"unknown program '{words[0]}': add it to SKIP_PROGRAMS or run it"
    verb = next((w for w in words[1:] if not w.startswith("-")), None)
    if verb == "serve" and cmd.background:
        return None
    if verb in SKIP_VERBS:
        module, why = SKIP_VERBS[verb]
        if module is None or importlib.util.find_spec(module) is None:
            return why
    return None


def quick(cmd: Command) -> str:
    """The command as the test runs it: QUICK_REWRITES applied (optional `[...]` parts were included on reading);
    a python snippet runs as written (its training calls are capped by `_quick_api`)."""
    if cmd.kind == "python":
        return cmd.text
    text = cmd.text
    for pattern, repl in QUICK_REWRITES:
        text = re.sub(pattern, repl, text)
    return text


def test_extractor_reads_blocks_comments_continuations_and_outputs():
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
            "print(cnnlab.train(epochs=5).out)",
            "```",
            "prints",
            "```text",
            "runs/x",
            "```",
            "<!-- readme-test: skip (starts a server) -->",
            "",
            "```bash",
            "cnnlab train --out runs/y",
            "```",
            "<!-- readme-test: background (a server) -->",
            "```console",
            "$ cnnlab serve runs/y",
            "cnnlab serve: y at http://127.0.0.1:8000/",
            "$ curl localhost:8000/api/health",
            "…",
            "```",
        ]
    )
    cmds = readme_commands(text)
    assert [c.text for c in cmds] == [
        "source .venv/bin/activate",
        "cnnlab train --epochs 5 --out runs/x",
        "cnnlab explain runs/x filters --layer features.3",
        "cnnlab serve runs/x",
        "print(cnnlab.train(epochs=5).out)",
        "cnnlab train --out runs/y",
        "cnnlab serve runs/y",
        "curl localhost:8000/api/health",
    ]
    assert [c.line for c in cmds] == [2, 3, 5, 6, 12, 21, 25, 27]
    assert cmds[4].expected == ["runs/x"] and cmds[6].expected == ["cnnlab serve: y at http://127.0.0.1:8000/"]
    assert cmds[7].expected == ["…"] and cmds[1].expected == []
    assert quick(cmds[2]) == "cnnlab explain runs/x filters --layer features.3"
    reasons = [skip_reason(c) for c in cmds]
    assert reasons[0] and reasons[1] is None and reasons[2] is None and "server" in reasons[3]
    assert reasons[4] is None and reasons[5] == "marked in README.md: starts a server"
    assert cmds[6].background and reasons[6] is None


def test_output_forms_take_numbers_class_names_and_ellipses():
    classes = ("Ankle boot", "Coat", "T-shirt/top")
    shown = ["data: … — train 55,000, val 5,000", "…", "x.png: Ankle boot 97.1%, Coat 2.3%", "done in 1e-3 s"]
    out = "quick mode\ndata: fashion-mnist from /d — train 2,000, val 5,000\nnoise\nx.png: Coat 40.1%, T-shirt/top 8%\n"
    assert missing_output(shown[:3], out, classes) == []
    assert missing_output(shown, out + "done in 0.25 s", classes) == []
    assert missing_output(["x.png: Coat 1%, …", "data: …"], out, classes) == ["data: …"]  # in order
    assert missing_output(["x.png: Coat 1%"], out, classes) == ["x.png: Coat 1%"]  # the whole line
    assert missing_output(["x.png: Bag 1%"], out, classes) == ["x.png: Bag 1%"]  # Bag is not a class here
    assert missing_output(["accuracy:   0.89 (10 samples)"], "accuracy: 0.6036 (10000 samples)") == []
    # the precision is the machine's: an fp32 line shown matches a bf16 run, but not another word
    shown_model = "model: lenet5 (61,706 parameters) on cpu, fp32, 2 threads (why: --verbose 2)"
    assert (
        missing_output([shown_model], "model: lenet5 (61,706 parameters) on cpu, bf16, 1 thread (why: --verbose 2)")
        == []
    )
    assert (
        missing_output([shown_model], "model: lenet5 (61,706 parameters) on cpu, fp32x, 2 threads (why: --verbose 2)")
        != []
    )


def test_readme_writes_only_into_runs():
    """The page's commands and snippets write into runs/ (of the folder they run in), never elsewhere."""
    for cmd in readme_commands(README.read_text()):
        if skip_reason(cmd):
            continue
        if cmd.kind == "python":
            outs = re.findall(r"\bout=\"([^\"]*)\"", cmd.text)
        else:
            words = shlex.split(cmd.text)
            outs = [words[i + 1] for i, w in enumerate(words[:-1]) if w == "--out"]
        assert all(o == "runs" or o.startswith("runs/") for o in outs), f"{cmd.where}: writes to {outs}"


def test_readme_files_exist():
    """Every input file a README command names (an image, a recipe) is in the repository."""
    for cmd in readme_commands(README.read_text()):
        if cmd.kind != "bash" or skip_reason(cmd):
            continue
        for word in shlex.split(quick(cmd)):
            word = word.removeprefix("image=@")  # curl -F image=@FILE
            if re.search(r"\.(png|jpe?g|ya?ml|toml)$", word) and not word.startswith(("runs/", "-")):
                assert (ROOT / word).exists(), f"{cmd.where}: {word} does not exist (`{cmd.text}`)"


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_links_of_the_pages_resolve():
    """Every relative link of README.md, BENCHMARKS.md and docs/ names a file that exists, and a heading of it when
    it has an anchor: the README's map and the moved sections stay reachable."""
    pages = [README, ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and file.suffix == ".md":
                headings = re.findall(r"^#+ (.*)$", file.read_text(), flags=re.M)
                if anchor not in {_anchor(h) for h in headings}:
                    broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def _run_cnnlab(argv: list[str]) -> tuple[int, str]:
    """`cnnlab ARGV` in this process (tests/helpers.py: no interpreter start per command): exit code and output."""
    proc = run_cli(*argv, code=None)
    return proc.returncode, proc.stdout + proc.stderr


def _run_python(text: str, where: str) -> tuple[int, str]:
    """A snippet in this process: exit code (0, or 1 on an exception) and what it printed."""
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(text, where, "exec"), {"__name__": "__readme__"})
    except Exception as e:  # noqa: BLE001 - reported with the snippet's place
        return 1, f"{out.getvalue()}{type(e).__name__}: {e}"
    return 0, out.getvalue()


def _quick_api(monkeypatch) -> None:
    """The Python API's training runs capped as CNNLAB_QUICK caps `cnnlab train` (lr_find is short already)."""
    from cnnlab import api
    from cnnlab.cli.train import apply_quick_caps

    config = api._config

    def capped(verb: str, **values):
        return config(verb, **(values if verb == "lr_find" else apply_quick_caps(values)))

    monkeypatch.setattr(api, "_config", capped)


class _Server:
    """`cnnlab serve …` of a `background` block as a process on a free port, until `stop`."""

    def __init__(self, words: list[str]):
        argv = [w for w in words[1:] if w != "--port"] + ["--port", "0"]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cnnlab", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=subprocess_env(),
        )
        self.port, self.lines = None, []
        deadline = time.monotonic() + SERVER_WAIT_S
        while self.port is None and time.monotonic() < deadline:  # readline blocks until the line or the exit
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
            self.port = int(found.group(1)) if found else None

    def output(self) -> str:
        return "".join(self.lines)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


def _run_bash(words: list[str], servers: list[_Server]) -> tuple[int, str]:
    """One command line: `cnnlab` in this process, `curl` against the server started last."""
    if words[0] == "curl":
        if not servers or servers[-1].port is None:
            return 1, "no server is running for this curl (mark its `cnnlab serve` block `background`)"
        port = servers[-1].port
        words = [re.sub(r"\b(localhost|127\.0\.0\.1):8000\b", f"127.0.0.1:{port}", w) for w in words]
        proc = subprocess.run([*words, "--silent", "--show-error"], capture_output=True, text=True, timeout=60)
        return proc.returncode, proc.stdout + proc.stderr
    return _run_cnnlab(words[1:])


@pytest.mark.slow
@pytest.mark.fashion
def test_readme_runs_as_written(fashion_dir, tmp_path, monkeypatch, default_threads):
    monkeypatch.setenv("CNNLAB_QUICK", "1")
    monkeypatch.setenv("CNNLAB_PRECISION_CACHE", "off")
    monkeypatch.chdir(tmp_path)
    _quick_api(monkeypatch)
    (tmp_path / "examples").symlink_to(ROOT / "examples")  # the sample images, as from the repository root
    commands = readme_commands(README.read_text())
    assert sum(c.kind == "bash" for c in commands) >= 6 and any(c.kind == "python" for c in commands)
    classes = _fashion_classes()
    failures, skipped, timings, servers = [], [], [], []
    try:
        for cmd in commands:
            reason = skip_reason(cmd)
            if reason and reason.startswith("unknown program"):  # a new kind of command: run it or say why not
                failures.append(f"{cmd.where} `{cmd.text}`: {reason}")
            if reason:
                skipped.append(f"{cmd.where} `{cmd.text}`: {reason}")
                continue
            text, t0 = quick(cmd), time.perf_counter()
            if cmd.kind == "python":
                rc, out = _run_python(text, cmd.where)
            elif cmd.background:
                servers.append(_Server(shlex.split(text)))
                rc, out = (0 if servers[-1].port else 1), servers[-1].output()
            else:
                rc, out = _run_bash(shlex.split(text), servers)
            timings.append(f"{time.perf_counter() - t0:5.1f} s  {text[:90]}")
            missing = missing_output(cmd.expected, out, classes) if rc == 0 else []
            if rc != 0:
                failures.append(f"{cmd.where} `{text}` exited {rc}:\n{out[-2000:]}")
            elif missing:
                failures.append(f"{cmd.where} `{text}`: no output line of the form shown:\n  {missing}\n{out[-2000:]}")
    finally:
        for server in servers:
            server.stop()
    print("\n".join(["skipped:", *skipped, "timings:", *timings]))
    assert not failures, "\n\n".join(failures)
    for made in ("runs/lenet5/model.safetensors", "runs/lenet5-py", "runs/lenet5-ft", "runs/lr_find.png"):
        assert (tmp_path / made).exists(), made
