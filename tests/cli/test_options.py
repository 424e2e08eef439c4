"""The CLI's structure: TrainConfig is the one definition of a training option (help, type, default), the verbs'
parsers are built from it, and `import cnnlab` / `cnnlab --help` stay light."""

import dataclasses
import subprocess
import sys

import pytest

from cnnlab.cli import build_parser
from cnnlab.cli.train import LR_FIND_FIELDS
from cnnlab.train.config import TrainConfig, coerce
from tests.helpers import run_cli, subprocess_env

FIELDS = dataclasses.fields(TrainConfig)


def _help(verb: str) -> str:
    return run_cli(verb, "--help").stdout


def _options(help_text: str) -> dict[str, str]:
    """`--flag ARG  help …` blocks of an argparse help, by flag."""
    blocks: dict[str, str] = {}
    flag = None
    for line in help_text.split("options:")[1].splitlines():
        if line.startswith("  -"):
            flag = line.split()[0].rstrip(",")
            blocks[flag] = line
        elif flag and line.startswith("   "):
            blocks[flag] += " " + line.strip()
    return blocks


def test_every_field_has_help_and_a_train_flag():
    options = _options(_help("train"))
    for f in FIELDS:
        assert len(f.metadata.get("help", "")) > 10, f"{f.name} has no help metadata"
        flag = {"model_args": "--model-arg", "task_args": "--task-arg"}.get(f.name, "--" + f.name.replace("_", "-"))
        assert flag in options, f"{f.name}: no {flag} in `cnnlab train --help`"


def test_help_says_each_default_once():
    for verb in ("train", "lr-find"):
        for flag, text in _options(_help(verb)).items():
            assert text.count("(default") <= 1, f"{verb} {flag}: {text}"
            assert "(default: None)" not in text, f"{verb} {flag}: {text}"
    options = _options(_help("train"))
    assert "(default: 5;" in options["--epochs"] and "(default: 5000 for the 60k sets" in options["--val-split"]


def test_lr_find_takes_the_range_test_flags_only():
    assert set(LR_FIND_FIELDS) <= {f.name for f in FIELDS}
    options = _options(_help("lr-find"))
    for name in LR_FIND_FIELDS:
        assert "--" + name.replace("_", "-") in options
    for flag in ("--epochs", "--lr", "--schedule", "--patience", "--tta", "--checkpoint-every", "--resume"):
        assert flag not in options
    assert {"--min-lr", "--max-lr", "--steps", "--recipe", "--config", "--model-arg"} <= set(options)


def test_one_coercer_for_files_and_flags(capsys):
    assert coerce("lr", "1e-4") == 1e-4 and coerce("weight_decay", 0) == 0.0
    assert coerce("val_split", "100") == 100 and isinstance(coerce("val_split", 100.0), int)
    assert coerce("val_split", "0.1") == 0.1 and coerce("val_split", None) is None
    assert coerce("nesterov", "yes") is True and coerce("time_limit", 90) == "90"
    for name, value in (("epochs", "2.5"), ("lr", "fast"), ("batch_size", None), ("strict", "maybe")):
        with pytest.raises(ValueError, match=name):
            coerce(name, value)
    cfg = TrainConfig.from_dict({"lr": "3e-4", "epochs": "2", "val_split": 100.0, "grad_clip": 5})
    assert (cfg.lr, cfg.epochs, cfg.val_split, cfg.grad_clip) == (3e-4, 2, 100, 5.0)
    args = build_parser().parse_args(["train", "--lr", "1e-2", "--val-split", "100", "--strict"])
    assert (args.lr, args.val_split, args.strict, args.epochs) == (0.01, 100, True, None)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--epochs", "2.5"])
    assert "argument --epochs: invalid int value: '2.5'" in capsys.readouterr().err


def _loaded_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running `code` (an exit by SystemExit included)."""
    report = "import sys\ntry:\n    exec(sys.argv[1])\nexcept SystemExit:\n    pass\nprint(' '.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", report, code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env=subprocess_env(),
    ).stdout
    return set(out.splitlines()[-1].split())


HEAVY = {"torch", "matplotlib", "cnnlab.train", "cnnlab.explain", "cnnlab.run", "cnnlab.data", "cnnlab.models"}


def test_import_cnnlab_is_light():
    """A true subprocess: what `import cnnlab` and `cnnlab --help` load can only be seen in a fresh interpreter
    (this one has torch)."""
    assert not _loaded_after("import cnnlab; assert cnnlab.__version__") & HEAVY
    assert not _loaded_after("from cnnlab.cli import build_parser; build_parser()") & HEAVY
    assert not _loaded_after("from cnnlab.cli import main; main(['--help'])") & HEAVY  # `cnnlab --help`


def test_public_names_resolve_lazily():
    import cnnlab
    from cnnlab.models import create_model
    from cnnlab.train import Trainer

    assert cnnlab.create_model is create_model and cnnlab.Trainer is Trainer
    assert set(cnnlab.__all__) <= set(dir(cnnlab)) and "__version__" in dir(cnnlab)
    assert cnnlab.runtime.__name__ == "cnnlab.runtime"  # submodules as attributes, as before
    with pytest.raises(AttributeError, match="no_such_name"):
        cnnlab.no_such_name  # noqa: B018


@pytest.mark.parametrize("module", ["cnnlab", "cnnlab.cli"])
def test_the_entry_points_run_as_scripts(module):
    """A true subprocess: `python -m cnnlab` (the entry point every other CLI test calls in-process through
    `cnnlab.cli.main`) and `python -m cnnlab.cli` start, parse and print their help; `--help` imports no torch,
    so each takes a fraction of a second."""
    proc = subprocess.run(
        [sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=60, env=subprocess_env()
    )
    assert proc.returncode == 0 and "lr-find" in proc.stdout
