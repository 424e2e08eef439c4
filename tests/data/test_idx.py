import gzip

import numpy as np
import pytest

from cnnlab.data.idx import read_idx, write_idx


@pytest.mark.parametrize("gz", [True, False])
def test_round_trip_uint8(tmp_path, gz):
    x = np.random.default_rng(0).integers(0, 256, (7, 28, 28), dtype=np.uint8)
    path = tmp_path / ("a.idx.gz" if gz else "a.idx")
    write_idx(path, x)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == gz
    np.testing.assert_array_equal(read_idx(path).numpy(), x)


def test_header_layout_matches_official_format(tmp_path):
    # magic 0x00000803 for 3-D uint8, then big-endian dims — as in the MNIST files
    write_idx(tmp_path / "a", np.zeros((2, 3, 4), np.uint8), compress=False)
    raw = (tmp_path / "a").read_bytes()
    assert raw[:4] == bytes([0, 0, 8, 3])
    assert [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(3)] == [2, 3, 4]
    assert len(raw) == 16 + 24


def test_int32_big_endian(tmp_path):
    x = np.array([[1, -2], [300000, 4]], dtype=np.int32)
    write_idx(tmp_path / "b.gz", x)
    np.testing.assert_array_equal(read_idx(tmp_path / "b.gz").numpy(), x)


def test_bad_magic(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x89PNG not idx")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "bad")


def test_truncated(tmp_path):
    write_idx(tmp_path / "t", np.zeros((10, 28, 28), np.uint8), compress=False)
    data = (tmp_path / "t").read_bytes()
    (tmp_path / "t").write_bytes(data[:-100])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "t")


def test_corrupt_gzip(tmp_path):
    write_idx(tmp_path / "c.gz", np.zeros((10, 28, 28), np.uint8))
    data = (tmp_path / "c.gz").read_bytes()
    (tmp_path / "c.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="c.gz"):
        read_idx(tmp_path / "c.gz")


def test_gzip_detected_by_content_not_name(tmp_path):
    x = np.arange(12, dtype=np.uint8).reshape(3, 4)
    write_idx(tmp_path / "plain", x, compress=False)
    (tmp_path / "zipped").write_bytes(gzip.compress((tmp_path / "plain").read_bytes()))
    np.testing.assert_array_equal(read_idx(tmp_path / "zipped").numpy(), x)
