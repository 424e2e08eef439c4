"""Fixtures of the transfer-learning tests."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import make_shape_images


@pytest.fixture(scope="module")
def shapes_npz(tmp_path_factory):
    """Task B: 4 classes of shapes (another class count, other names than the 10-class toy data), as npz."""
    path = tmp_path_factory.mktemp("b") / "shapes.npz"
    x, y = make_shape_images(200, seed=0)
    xt, yt = make_shape_images(100, seed=1)
    np.savez(path, x_train=x, y_train=y, x_test=xt, y_test=yt, class_names=np.array(["sq", "ring", "plus", "x"]))
    return path
