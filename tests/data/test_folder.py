import numpy as np
import pytest
from PIL import Image

from cnnlab.data import load_dataset
from cnnlab.data.folder import read_image_folder
from cnnlab.data.images import ImageReadError, load_image


def _write(folder, n_per_class=4, mode="L", size=(12, 10), fmt="png"):
    rng = np.random.default_rng(0)
    for c in ("cat", "dog"):
        (folder / c).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            shape = (size[1], size[0]) + ((3,) if mode == "RGB" else ())
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(folder / c / f"{i}.{fmt}")


@pytest.mark.parametrize("fmt", ["png", "bmp", "jpg"])
def test_reads_formats(tmp_path, fmt):
    _write(tmp_path, fmt=fmt)
    s = read_image_folder(tmp_path)
    assert s.images.shape == (8, 1, 10, 12) and s.classes == ["cat", "dog"]
    assert s.labels.tolist() == [0] * 4 + [1] * 4


def test_png_pixels_exact(tmp_path):
    _write(tmp_path, n_per_class=1)
    s = read_image_folder(tmp_path)
    np.testing.assert_array_equal(s.images[0, 0].numpy(), np.asarray(Image.open(tmp_path / "cat" / "0.png")))


def test_corrupt_files_skipped_with_warning(tmp_path):
    _write(tmp_path)
    (tmp_path / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    with pytest.warns(UserWarning, match="2 file") as rec:
        s = read_image_folder(tmp_path)
    text = str(rec[0].message)
    assert "broken.png" in text and "notes.txt" in text
    assert len(s) == 8


def test_corrupt_files_strict(tmp_path):
    _write(tmp_path)
    (tmp_path / "cat" / "broken.jpg").write_bytes(b"\xff\xd8\xff nope")
    with pytest.raises(ImageReadError, match="broken.jpg"):
        read_image_folder(tmp_path, strict=True)


def test_majority_mode_and_flag(tmp_path):
    _write(tmp_path, mode="RGB")
    Image.new("L", (12, 10), 128).save(tmp_path / "cat" / "gray.png")
    assert read_image_folder(tmp_path).images.shape[1] == 3  # 8 RGB beat 1 L
    assert read_image_folder(tmp_path, mode="L").images.shape[1] == 1


def test_mixed_sizes_need_resize(tmp_path):
    _write(tmp_path)
    Image.new("L", (20, 20)).save(tmp_path / "dog" / "big.png")
    with pytest.raises(ValueError, match="--image-size"):
        read_image_folder(tmp_path)
    assert read_image_folder(tmp_path, size=(16, 16)).images.shape[2:] == (16, 16)


def test_train_test_subfolders(tmp_path):
    _write(tmp_path / "train", n_per_class=10)
    _write(tmp_path / "test", n_per_class=2)
    s = load_dataset(f"folder:{tmp_path}", val_split=4)
    assert len(s.train) == 16 and len(s.val) == 4 and len(s.test) == 4


def test_load_image_converts_and_says_so(tmp_path):
    Image.new("RGB", (40, 30), (255, 0, 0)).save(tmp_path / "red.png")
    x, notes = load_image(tmp_path / "red.png", "L", (28, 28))
    assert x.shape == (1, 28, 28)
    assert int(x[0, 0, 0]) == 76  # ITU-R 601 luma of pure red: 0.299 · 255
    assert any("RGB image to grayscale" in n for n in notes) and any("resized" in n for n in notes)
