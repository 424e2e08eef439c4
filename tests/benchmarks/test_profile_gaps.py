"""`python -m benchmarks.suite.profile_gaps`: a progress line per measurement, and --quick leaves BENCHMARKS.md alone.

The timings themselves are replaced by constants here (the script's numbers are measured, never asserted)."""

import importlib
import sys

import pytest

MODULE = "benchmarks.suite.profile_gaps"  # imported from the repository root, as `python -m` runs it


@pytest.fixture
def profile_gaps(monkeypatch):
    module = importlib.import_module(MODULE)
    monkeypatch.setattr(module, "clock", lambda fn, reps=50: (fn(), 1.0)[1])  # one call: the code path, not a timing
    monkeypatch.setattr(module, "matmul_peak", lambda dtype, n=4096, reps=4: {"matmul": 100.0, "onednn": 200.0})
    monkeypatch.setattr(module, "resolve_precision", lambda *a: "fp32")
    monkeypatch.setattr(module, "lenet_step", lambda *a: (1.0, 2.0, 3.0))
    lenet = module.create_model  # every model is LeNet-5 here: the code path is the same, at a fraction of the cost
    monkeypatch.setattr(module, "create_model", lambda name: lenet("lenet5"))
    yield module
    sys.modules.pop(MODULE, None)


@pytest.mark.slow
def test_quick_mode_reports_progress_and_writes_nothing(profile_gaps, capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(profile_gaps, "ROOT", tmp_path)  # where BENCHMARKS.md would be written
    profile_gaps.main(["--quick"])
    out, err = capsys.readouterr()
    steps = [line for line in err.splitlines() if line.startswith("[")]
    assert len(steps) >= 10 and "peaks: fp32 200 GFLOP/s" in err and "lecture_cnn inference, batch 100" in err
    assert steps[-1].endswith("done (--quick: rough numbers, BENCHMARKS.md not changed)")
    assert "## Profiles behind the gaps" in out and "### lecture_cnn training, batch 32" in out
    assert not (tmp_path / "BENCHMARKS.md").exists()


def test_full_mode_replaces_its_section_and_keeps_the_others(profile_gaps, capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(profile_gaps, "ROOT", tmp_path)
    (tmp_path / "BENCHMARKS.md").write_text(
        "# Benchmarks\n\nkept\n\n## Profiles behind the gaps\n\nold\n\n## Written by hand\n\nalso kept\n"
    )
    monkeypatch.setattr(profile_gaps, "layer_times", lambda *a: [("conv", "Conv2d", 1.0)])
    profile_gaps.main([])
    text = (tmp_path / "BENCHMARKS.md").read_text()
    assert "kept" in text and "old" not in text and "### Inference, lecture_cnn, batch 500" in text
    assert text.index("### Inference, lecture_cnn") < text.index("\n## Written by hand\n\nalso kept\n")
    assert "done: appended to" in capsys.readouterr().err
