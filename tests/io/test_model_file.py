import json

import pytest
import torch

from cnnlab.io import load_checkpoint, load_model, read_meta, save_checkpoint, save_model
from cnnlab.models import create_model
from cnnlab.run.folder import check_run_dir

META = {
    "classes": list("abcdefghij"),
    "input_size": [1, 28, 28],
    "mean": [0.3],
    "std": [0.2],
    "precision": "fp32",
}


@pytest.mark.parametrize("name", ["lenet5", "lecture_cnn"])
def test_model_file_round_trip(tmp_path, name):
    model = create_model(name, num_classes=10, in_chans=1).eval()
    path = save_model(tmp_path / "m.safetensors", model, **META)
    loaded, meta = load_model(path)
    x = torch.randn(3, 1, 28, 28)
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    assert meta.model == name and list(meta.classes) == META["classes"] and meta.model_args["num_classes"] == 10


def test_model_file_is_safetensors_not_pickle(tmp_path):
    path = save_model(tmp_path / "m.safetensors", create_model("lenet5"), **META)
    raw = path.read_bytes()
    header_len = int.from_bytes(raw[:8], "little")  # safetensors: u64 header size, then a JSON header
    header = json.loads(raw[8 : 8 + header_len])
    assert "features.0.weight" in header and json.loads(header["__metadata__"]["cnnlab"])["model"] == "lenet5"
    assert b"\x80\x04" not in raw[:2] and not raw.startswith(b"PK")  # neither a pickle nor a zip (torch.save)


def test_model_args_survive(tmp_path):
    model = create_model("lecture_cnn", num_classes=5, in_chans=3, img_size=32, drop_rate=0.2)
    meta = {**META, "classes": list("abcde"), "input_size": [3, 32, 32], "mean": [0.5] * 3, "std": [0.25] * 3}
    save_model(tmp_path / "m.safetensors", model, **meta)
    loaded, _ = load_model(tmp_path / "m.safetensors")
    assert loaded.classifier[2].p == 0.2 and loaded(torch.zeros(1, 3, 32, 32)).shape == (1, 5)


def test_run_folder_and_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        load_model(tmp_path)
    (tmp_path / "x.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a safetensors"):
        read_meta(tmp_path / "x.safetensors")
    with pytest.raises(FileExistsError, match="--overwrite"):
        check_run_dir(tmp_path)
    with pytest.raises(FileExistsError, match="not a cnnlab run folder"):  # x.safetensors is not a run's file
        check_run_dir(tmp_path, overwrite=True)


def test_checkpoint_atomic_and_weights_only(tmp_path):
    state = {"model": {"w": torch.ones(2)}, "epoch": 3, "rng": torch.get_rng_state()}
    save_checkpoint(tmp_path / "c.pt", state)
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temp file left behind
    back = load_checkpoint(tmp_path / "c.pt")
    assert back["epoch"] == 3 and torch.equal(back["model"]["w"], torch.ones(2))

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="not a cnnlab checkpoint .it holds objects other than tensors"):
        load_checkpoint(tmp_path / "evil.pt")  # refused, never run, and torch's weights_only advice never shown
