import numpy as np
import pytest
import torch

from cnnlab.data import DatasetNotFound, load_dataset
from cnnlab.data.cifar import CLASSES as CIFAR_CLASSES
from cnnlab.data.cifar import read_cifar_bin, write_cifar_bin
from cnnlab.data.sources import FASHION_CLASSES, get, locate
from tests.conftest import make_images, write_fake_idx


def test_fashion_classes_in_official_order():
    assert list(FASHION_CLASSES) == [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ]


def test_idx_dataset_from_data_dir(fake_idx):
    s = load_dataset("fashion-mnist", data_dir=fake_idx, val_split=100)
    assert s.train.images.shape == (500, 1, 28, 28) and s.train.images.dtype == torch.uint8
    assert len(s.val) == 100 and len(s.test) == 200
    assert s.classes[0] == "T-shirt/top" and s.mode == "L"
    assert s.source == str(fake_idx)


def test_val_split_is_seeded_and_disjoint(fake_idx):
    a = load_dataset("fashion-mnist", data_dir=fake_idx, val_split=0.2, seed=3)
    b = load_dataset("fashion-mnist", data_dir=fake_idx, val_split=0.2, seed=3)
    c = load_dataset("fashion-mnist", data_dir=fake_idx, val_split=0.2, seed=4)
    assert len(a.val) == 120
    assert torch.equal(a.val.images, b.val.images)
    assert not torch.equal(a.val.images, c.val.images)
    # together the two parts are the whole training file
    full = load_dataset("fashion-mnist", data_dir=fake_idx, val_split=0).train
    assert len(a.train) + len(a.val) == len(full)
    assert sorted(torch.cat([a.train.labels, a.val.labels]).tolist()) == sorted(full.labels.tolist())


def test_uncompressed_and_env_var(tmp_path, monkeypatch):
    write_fake_idx(tmp_path / "mnist", gz=False)
    monkeypatch.setenv("CNNLAB_DATA", str(tmp_path))
    s = load_dataset("mnist", val_split=0)
    assert s.classes == [str(i) for i in range(10)] and len(s.train) == 600


def test_missing_dataset_says_where_and_how(tmp_path):
    with pytest.raises(DatasetNotFound) as e:
        load_dataset("mnist", data_dir=tmp_path)
    msg = str(e.value)
    assert str(tmp_path) in msg and "user cache" in msg and "cnnlab datasets get mnist" in msg


def test_unknown_name():
    with pytest.raises(ValueError, match="known: fashion-mnist"):
        load_dataset("imagenet")


def test_get_copies_into_cache(fake_idx, tmp_path):
    folder, how = get("fashion-mnist", data_dir=fake_idx)
    assert "copied" in how and (folder / "train-images-idx3-ubyte.gz").exists()
    assert locate("fashion-mnist") == folder  # found in the cache now, without --data-dir
    assert get("fashion-mnist")[1] == "already in the cache"


def test_cifar10_binary(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    for name, n in [(f"data_batch_{i}.bin", 20) for i in range(1, 6)] + [("test_batch.bin", 10)]:
        imgs = torch.from_numpy(rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8))
        write_cifar_bin(folder / name, imgs, torch.from_numpy(rng.integers(0, 10, n)))
    raw = (folder / "test_batch.bin").read_bytes()
    assert len(raw) == 10 * 3073
    imgs, labels = read_cifar_bin(folder / "test_batch.bin")
    assert labels[0] == raw[0] and imgs[0, 0, 0, 0] == raw[1] and imgs[0, 1, 0, 0] == raw[1 + 1024]
    s = load_dataset("cifar10", data_dir=tmp_path, val_split=10)
    assert s.train.images.shape == (90, 3, 32, 32) and len(s.test) == 10 and s.classes == CIFAR_CLASSES
    assert s.mode == "RGB"


def test_cifar_corrupt(tmp_path):
    (tmp_path / "x.bin").write_bytes(b"\x00" * 3000)
    with pytest.raises(ValueError, match="not a CIFAR-10 binary"):
        read_cifar_bin(tmp_path / "x.bin")


def test_npz_keras_layout(tmp_path):
    x, y = make_images(50, size=16, channels=3)
    np.savez(
        tmp_path / "d.npz",
        x_train=x,
        y_train=y,
        x_test=x[:10],
        y_test=y[:10],
        class_names=np.array([f"c{i}" for i in range(10)]),
    )
    s = load_dataset(f"npz:{tmp_path / 'd.npz'}", val_split=5)
    assert s.train.images.shape == (45, 3, 16, 16) and s.classes[3] == "c3"
    # NHWC → NCHW keeps pixels where they were
    first = s.train.subset(slice(0, 1))
    assert first.images.shape[1] == 3


def test_npz_missing_keys(tmp_path):
    np.savez(tmp_path / "d.npz", images=np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="x_train"):
        load_dataset(f"npz:{tmp_path / 'd.npz'}")


def test_csv(tmp_path):
    x, y = make_images(30, size=8)
    rows = np.concatenate([y[:, None], x.reshape(30, -1)], 1)
    np.savetxt(
        tmp_path / "train.csv",
        rows,
        fmt="%d",
        delimiter=",",
        header="label," + ",".join(f"p{i}" for i in range(64)),
        comments="",
    )
    s = load_dataset(f"csv:{tmp_path / 'train.csv'}", val_split=0)
    assert s.train.images.shape == (30, 1, 8, 8)
    np.testing.assert_array_equal(s.train.images[:, 0].numpy(), x)


def test_resize_and_mode(fake_idx):
    s = load_dataset("fashion-mnist", data_dir=fake_idx, val_split=0, mode="RGB", image_size=32)
    assert s.train.images.shape[1:] == (3, 32, 32)
    assert any("resized" in n for n in s.notes) and any("mode RGB" in n for n in s.notes)
