"""Hostile and careless input, as a user meets it: one clear line on stderr naming the file or flag, a non-zero exit,
no traceback, nothing of an earlier run changed, memory bounded. Every case is generated here, small."""

import json
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from cnnlab.io import save_model
from cnnlab.models import create_model
from tests.helpers import CliResult, run_cli
from tests.hostile import helpers as hostile
from tests.hostile.helpers import cnnlab as cnnlab_subprocess

META = {**hostile.META, "mode": "L"}


def cnnlab(*args) -> CliResult:
    """`cnnlab ARGS` run in this process (tests/helpers.py), whatever its exit code."""
    return run_cli(*args, code=None)


def cnnlab_process(*args, memory_gb: float | None = None) -> subprocess.CompletedProcess:
    """`python -m cnnlab ARGS` in a new process, for what only a process shows: a memory limit (RLIMIT_AS cannot be
    set for one command of this process) or a hang (a child is bounded by a timeout; this process would block)."""
    return cnnlab_subprocess(*args, memory_gb=memory_gb)


def refused(proc: CliResult | subprocess.CompletedProcess, *names: str) -> str:
    """The run failed with one error line that names each of `names`, and no traceback."""
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, proc.stderr
    for name in names:
        assert str(name) in errors[0], errors[0]
    return errors[0]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "m.safetensors"
    save_model(path, create_model("lenet5", num_classes=10, in_chans=1), **META)
    return path


@pytest.fixture(scope="module")
def png(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("img") / "x.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(path)
    return path


def _with_meta(tmp_path: Path, **changes) -> Path:
    model = create_model("lenet5", num_classes=10, in_chans=1)
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    meta = {"format": 1, "model": "lenet5", "model_args": {"num_classes": 10, "in_chans": 1}, **META, **changes}
    path = tmp_path / "bad.safetensors"
    save_file(tensors, path, metadata={"cnnlab": json.dumps(meta)})
    return path


@pytest.mark.slow
def test_huge_input_size_in_metadata_is_refused_before_allocating(tmp_path, png):
    """A true subprocess: "before allocating" is checked by a 3 GB address-space limit on the process."""
    path = _with_meta(tmp_path, input_size=[1, 100_000, 100_000])
    refused(cnnlab_process("predict", path, png, memory_gb=3), path, "input_size")


@pytest.mark.parametrize(
    ("change", "word"),
    [
        ({"std": [0.0]}, "std"),
        ({"classes": []}, "classes"),
        ({"mean": [float("nan")]}, "mean"),
        ({"model_args": {"num_classes": 10**9}}, "num_classes"),
    ],
)
def test_odd_metadata_names_the_key(tmp_path, png, change, word):
    path = _with_meta(tmp_path, **change)
    refused(cnnlab("predict", path, png), path, word)


def test_metadata_that_is_not_json(tmp_path, png):
    model = create_model("lenet5", num_classes=10, in_chans=1)
    path = tmp_path / "m.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path, metadata={"cnnlab": "{not json"})
    refused(cnnlab("predict", path, png), path, "not valid JSON")


def test_non_finite_weights_are_refused(tmp_path, png):
    model = create_model("lenet5", num_classes=10, in_chans=1)
    with torch.no_grad():
        model.features[0].weight[0, 0, 0, 0] = float("nan")
    path = tmp_path / "nan.safetensors"
    save_model(path, model, **META)
    refused(cnnlab("predict", path, png), path, "non-finite weights", "features.0.weight")


def test_wrong_shapes_and_missing_keys_name_the_key(tmp_path, png):
    model = create_model("lenet5", num_classes=10, in_chans=1)
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    tensors["features.0.weight"] = torch.zeros(3, 1, 5, 5)
    del tensors["classifier.4.bias"]
    meta = {"format": 1, "model": "lenet5", "model_args": {"num_classes": 10, "in_chans": 1}, **META}
    path = tmp_path / "shapes.safetensors"
    save_file(tensors, path, metadata={"cnnlab": json.dumps(meta)})
    line = refused(cnnlab("predict", path, png), path)
    assert "missing classifier.4.bias" in line and "features.0.weight has shape (3, 1, 5, 5)" in line


def _npz(tmp_path: Path, **arrays) -> Path:
    rng = np.random.default_rng(0)
    base = {"x_train": rng.random((40, 8, 8), dtype=np.float32), "y_train": np.arange(40) % 4}
    path = tmp_path / "d.npz"
    np.savez(path, **{**base, **arrays})
    return path


def test_one_nan_pixel_is_an_error_naming_its_index(tmp_path):
    x = np.random.default_rng(0).random((40, 8, 8), dtype=np.float32)
    x[3, 2, 1] = np.nan
    path = _npz(tmp_path, x_train=x)
    refused(cnnlab("train", "--data", f"npz:{path}", "--out", tmp_path / "run"), path, "non-finite", "(3, 0, 2, 1)")
    assert not (tmp_path / "run").exists()  # refused before a run folder was made


@pytest.mark.parametrize("labels", [np.r_[np.arange(39) % 2, 255], np.r_[np.arange(39) % 4, 1_000_000]])
def test_labels_out_of_range_do_not_grow_the_model(tmp_path, labels):
    path = _npz(tmp_path, y_train=labels)
    refused(cnnlab("train", "--data", f"npz:{path}", "--out", tmp_path / "run"), path, "distinct labels")


def test_test_labels_are_checked_against_the_class_names(tmp_path):
    path = _npz(
        tmp_path,
        class_names=np.array(list("abcd")),
        x_test=np.zeros((5, 8, 8), np.uint8),
        y_test=np.array([0, 1, 2, 3, 7]),
    )
    refused(cnnlab("train", "--data", f"npz:{path}", "--out", tmp_path / "run"), path, "y_test", "label 7")


def test_a_header_only_csv(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("label,p0,p1,p2,p3\n")
    refused(cnnlab("train", "--data", f"csv:{path}", "--out", tmp_path / "run"), path)
    assert "warning" not in cnnlab("train", "--data", f"csv:{path}").stderr  # numpy's own warning is not shown


@pytest.mark.parametrize(
    ("flags", "flag"),
    [
        (["--gamma", "-1", "--schedule", "step"], "--gamma"),
        (["--step-size", "0", "--schedule", "step"], "--step-size"),
        (["--val-split", "1.5"], "--val-split"),
        (["--val-split", "nan"], "--val-split"),
        (["--image-size", "0"], "--image-size"),
        (["--image-size", "100000"], "--image-size"),
    ],
)
def test_flag_ranges_are_refused_before_any_work(tmp_path, flags, flag):
    proc = cnnlab("train", "--data-dir", tmp_path / "nothing-here", *flags, "--out", tmp_path / "run")
    refused(proc, flag)
    assert not (tmp_path / "run").exists()


def test_config_file_values_of_the_wrong_type(tmp_path):
    for text, key in (("batch_size: true\n", "batch_size"), ("epochs: 1.5\n", "epochs")):
        cfg = tmp_path / "c.yaml"
        cfg.write_text(text)
        refused(cnnlab("train", "--config", cfg, "--out", tmp_path / "run"), key)


@pytest.mark.slow
def test_empty_and_foreign_checkpoints(tmp_path, fake_idx):
    run = tmp_path / "run"
    proc = cnnlab("train", "--data-dir", fake_idx, "--epochs", "1", "--out", run, "--verbose", "0")
    assert proc.returncode == 0, proc.stderr
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != "checkpoint.pt"}
    (run / "checkpoint.pt").write_bytes(b"")
    refused(cnnlab("train", "--resume", run), "checkpoint.pt", "empty")

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    torch.save({"model": Evil()}, run / "checkpoint.pt")
    line = refused(cnnlab("train", "--resume", run), "checkpoint.pt")
    assert "weights_only" not in line and not (tmp_path / "pwned").exists()  # refused, never run
    after = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != "checkpoint.pt"}
    assert after == before  # a refused resume rewrites nothing (config.json included)


@pytest.mark.slow
def test_a_fifo_named_png_does_not_hang(tmp_path, model_file):
    """A true subprocess: were the FIFO opened, the command would block forever; a child process is bounded by a
    timeout (a failure), this process would hang the suite."""
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    refused(cnnlab_process("predict", model_file, fifo), fifo, "not a regular file")


@pytest.mark.slow
def test_a_decompression_bomb_is_refused(tmp_path, model_file):
    bomb = tmp_path / "bomb.png"
    Image.new("1", (20_000, 20_000)).save(bomb)  # 400 M pixels in a small file: over pillow's bomb limit
    refused(cnnlab("predict", model_file, bomb), bomb, "decompression bomb")


def test_exif_orientation_is_applied(tmp_path):
    from cnnlab.data.images import open_image

    im = Image.new("L", (40, 20), 0)
    im.paste(255, (0, 0, 10, 20))  # a bright band on the left of the stored pixels
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view"
    path = tmp_path / "phone.jpg"
    im.save(path, exif=exif)
    upright = open_image(path)
    assert upright.size == (20, 40)  # as the phone meant it to be seen
    assert np.asarray(upright)[:5].mean() > 200  # the band is now along the top


@pytest.mark.slow
def test_overwrite_then_a_failing_run_keeps_the_old_folder_whole(tmp_path, fake_idx):
    run = tmp_path / "run"
    assert cnnlab("train", "--data-dir", fake_idx, "--epochs", "1", "--out", run, "--verbose", "0").returncode == 0
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    # the same folder, --overwrite, and a model that cannot take the data: fails after the data are read
    proc = cnnlab(
        "train",
        "--data-dir",
        fake_idx,
        "--model",
        "CL8k3-MP4-MP4-MP4-MP4-MP4-FC10",
        "--out",
        run,
        "--overwrite",
        "--verbose",
        "0",
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # nothing half-made left beside it


def test_resume_of_a_finished_run_rewrites_nothing(tmp_path, fake_idx):
    run = tmp_path / "run"
    assert cnnlab("train", "--data-dir", fake_idx, "--epochs", "1", "--out", run, "--verbose", "0").returncode == 0
    (run / ".checkpoint.pt.abc123.tmp").write_bytes(b"half")  # what a kill during a checkpoint write leaves
    before = (run / "metrics.json").read_bytes()
    refused(cnnlab("train", "--resume", run), "already finished")
    assert (run / "metrics.json").read_bytes() == before


@pytest.mark.slow
def test_a_run_that_fails_after_the_swap_puts_the_old_folder_back(tmp_path, fake_idx):
    from cnnlab.run.train import train_run
    from cnnlab.train.callbacks import Callback
    from cnnlab.train.config import TrainConfig

    class Boom(Callback):
        def on_train_begin(self, logs):
            raise RuntimeError("a fault before the first step")

    run = tmp_path / "run"
    cfg = TrainConfig(data_dir=str(fake_idx), epochs=1, verbose=0, out=str(run))
    train_run(cfg, log=lambda s: None)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    cfg.overwrite = True
    with pytest.raises(RuntimeError, match="fault"):
        train_run(cfg, callbacks=[Boom()], log=lambda s: None)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


@pytest.mark.parametrize(
    ("name", "text", "words"),
    [
        ("c.yaml", "lr: [1, 2\n", ["invalid YAML at line 2"]),
        ("c.toml", "lr = \n", ["invalid TOML"]),
        ("c.json", "{bad json", ["invalid JSON at line 1"]),
    ],
)
def test_broken_config_files_name_the_file_and_line(tmp_path, name, text, words):
    path = tmp_path / name
    path.write_text(text)
    refused(cnnlab("train", "--config", path, "--out", tmp_path / "run"), path, *words)


def test_a_text_file_given_as_npz(tmp_path):
    path = tmp_path / "t.npz"
    path.write_text("x,y\n1,2\n")
    refused(cnnlab("train", "--data", f"npz:{path}", "--out", tmp_path / "run"), path, "not an .npz file")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["lenet5", "--input", "0x28x28"], ["--input 0x28x28"]),
        (["lenet5", "--input", "1x100000x100000"], ["4096"]),
        (["lenet5", "--input", "1x28x32"], ["cannot take a 1×28×32 input", "H = W"]),
        (["CL8k5-MP4-FC3", "--input", "1x128"], ["--model-arg dims=1"]),
    ],
)
def test_summary_inputs_it_cannot_take(args, words):
    refused(cnnlab("summary", *args), *words)


def test_folder_surprises_get_a_note(tmp_path):
    from cnnlab.data import load_dataset

    root = tmp_path / "imgs"
    for split, classes in (("train", ("a", "b", "c")), ("test", ("a", "b", "zz"))):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            if c == "c":
                continue  # an empty class folder
            for i in range(3):
                mode = "CMYK" if (split, c, i) == ("train", "b", 0) else "L"
                Image.new(mode, (8, 8)).save(root / split / c / f"{i}.{'jpg' if mode == 'CMYK' else 'png'}")
    with pytest.warns(UserWarning) as caught:
        load_dataset(f"folder:{root}", val_split=0)
    text = " | ".join(str(w.message) for w in caught)
    assert "hold no readable image: c" in text and "zz are not in train/" in text and "CMYK" in text


def _tiny_npz(path: Path, n: int = 20, labels_dtype=np.int64) -> Path:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    y = (np.arange(n) % 10).astype(labels_dtype)
    np.savez(path, x_train=x, y_train=y, x_test=x, y_test=y)
    return path


@pytest.mark.slow
def test_evaluate_prints_its_report_when_the_run_folder_cannot_take_the_plot(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    save_model(run / "model.safetensors", create_model("lenet5", num_classes=10, in_chans=1), **META)
    (run / "confusion.png").mkdir()  # unwritable as a file (a read-only folder cannot be made so for root)
    data = f"npz:{_tiny_npz(tmp_path / 'd.npz')}"
    proc = cnnlab("evaluate", run, "--data", data, "--val-split", "0")
    assert proc.returncode == 0 and "accuracy" in proc.stdout, proc.stderr
    assert "confusion.png not written" in proc.stderr and "--out" in proc.stderr and "Traceback" not in proc.stderr
    proc = cnnlab("evaluate", run, "--data", data, "--val-split", "0", "--out", tmp_path / "plots")
    assert proc.returncode == 0 and (tmp_path / "plots" / "confusion.png").is_file(), proc.stderr


@pytest.mark.slow
def test_augment_n_beyond_the_data_is_a_note_and_absurd_n_refused(tmp_path):
    data = f"npz:{_tiny_npz(tmp_path / 'd.npz', n=12)}"
    proc = cnnlab("augment", "--data", data, "--n", "40", "--out", tmp_path / "a.png")
    assert proc.returncode == 0 and "more than the 12 training samples" in proc.stderr, proc.stderr
    refused(cnnlab("augment", "--data", data, "--n", "100000"), "--n", "1–256")


def test_float_labels_get_a_note(tmp_path):
    from cnnlab.data import load_dataset

    with pytest.warns(UserWarning, match="stores labels as float32"):
        load_dataset(f"npz:{_tiny_npz(tmp_path / 'd.npz', labels_dtype=np.float32)}", val_split=0)


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["predict", "RUN", "IMG", "--top", "0"], "--top"),
        (["predict", "RUN", "IMG", "--top", "-1"], "--top"),
        (["summary", "lenet5", "--classes", "0"], "--classes"),
    ],
)
def test_counts_below_one_are_refused_with_the_range(model_file, png, args, flag):
    args = [{"RUN": model_file, "IMG": png}.get(a, a) for a in args]
    refused(cnnlab(*args), flag, "≥ 1")


def test_a_full_disk_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    import errno

    from cnnlab import files, io

    path = tmp_path / "checkpoint.pt"
    io.save_checkpoint(path, {"model": {}, "step": 1})

    def full_disk_save(obj, f, *a, **k):  # what torch.save does on a full disk: a RuntimeError from its zip writer
        Path(f).write_bytes(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")

    monkeypatch.setattr(torch, "save", full_disk_save)
    monkeypatch.setattr(files.shutil, "disk_usage", lambda p: SimpleNamespace(free=0))
    with pytest.raises(OSError, match="could not be written \\(No space left on device\\); the previous file") as e:
        io.save_checkpoint(path, {"model": {}, "step": 2})
    assert e.value.errno == errno.ENOSPC
    assert io.load_checkpoint(path)["step"] == 1 and not list(tmp_path.glob(".*.tmp"))
