"""t-SNE of CNN codes keeps the classes apart: 5-NN in the 2-D map classifies held-out points."""

import numpy as np
import pytest

from cnnlab.explain import cnn_codes, embedding


@pytest.mark.fashion
def test_tsne_of_codes_separates_classes(fashion_lenet):
    pytest.importorskip("sklearn")
    from sklearn.neighbors import KNeighborsClassifier

    model, meta, test = fashion_lenet
    emb = embedding(model, meta, test, n=1000, seed=0)
    assert emb.points.shape == (1000, 2) and emb.codes.shape == (1000, 84)  # LeNet-5's penultimate layer: FC84
    assert len(set(emb.indices.tolist())) == 1000
    # fit 5-NN on half of the embedded test points, score on the other half
    knn = KNeighborsClassifier(5).fit(emb.points[::2], emb.labels[::2])
    assert knn.score(emb.points[1::2], emb.labels[1::2]) >= 0.7


def test_codes_are_the_pre_logits_features(toy_lenet):
    model, meta, test = toy_lenet
    codes = cnn_codes(model, meta, test.images[:7], batch=3)
    assert codes.shape == (7, 84) and codes.dtype == np.float32 and (codes >= 0).all()  # after the head's ReLU
    with pytest.raises(ValueError, match="at least 5"):
        embedding(model, meta, test, n=2)
