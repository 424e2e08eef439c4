"""`cnnlab evaluate`'s report: macro averages as scikit-learn computes them, and the most-confused pairs."""

import numpy as np
import pytest
import torch

from cnnlab.evaluate import format_report, metrics_from_logits, most_confused

CLASSES = ["cat", "dog", "bird", "fish"]


def _result(seed=0, n=400):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 4, (n,), generator=g)
    logits = torch.randn(n, 4, generator=g)
    logits[torch.arange(n), labels] += 1.0  # better than chance, with mistakes in every cell
    return metrics_from_logits(logits, labels, CLASSES), logits.argmax(1).numpy(), labels.numpy()


def test_macro_average_matches_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    result, preds, labels = _result()
    report = metrics.classification_report(labels, preds, output_dict=True, zero_division=0)
    for key in ("precision", "recall", "f1"):
        assert result["macro_avg"][key] == pytest.approx(report["macro avg"][key if key != "f1" else "f1-score"])
    assert result["macro_avg"]["support"] == 400


def test_most_confused_pairs_sorted_by_count():
    conf = np.array([[5, 3, 0], [7, 2, 3], [1, 0, 9]])
    pairs = most_confused(conf, ["a", "b", "c"])
    assert [(p["true"], p["predicted"], p["count"]) for p in pairs] == [
        ("b", "a", 7),
        ("a", "b", 3),
        ("b", "c", 3),
        ("c", "a", 1),
    ]
    assert len(most_confused(conf, ["a", "b", "c"], top=2)) == 2
    result, _, _ = _result()
    assert len(result["most_confused"]) == 10
    counts = [p["count"] for p in result["most_confused"]]
    assert counts == sorted(counts, reverse=True) and all(p["true"] != p["predicted"] for p in result["most_confused"])


def test_text_report_has_macro_row_and_pairs():
    result, _, _ = _result()
    text = format_report(result, CLASSES)
    assert "macro avg" in text and "most confused (true → predicted: count), top 10" in text
    top = result["most_confused"][0]
    line = next(line for line in text.splitlines() if "→" in line and ":" in line and "top" not in line)
    assert line.split() == [top["true"], "→", f"{top['predicted']}:", str(top["count"])]
