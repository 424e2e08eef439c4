"""Classification through the task seam is what cnnlab always computed: the same metrics, logs and checkpoints."""

import pytest
import torch
import torch.nn.functional as F

from cnnlab.evaluate import metrics_from_logits
from cnnlab.tasks import get_task, list_tasks, make_task
from cnnlab.tasks.classify import Classify
from cnnlab.train.losses import ClassificationLoss
from tests.train.helpers import make_trainer


def test_the_registry_and_its_one_line_error():
    assert list_tasks()[:2] == ["classify", "localize"] and get_task("classify") is Classify
    with pytest.raises(ValueError, match="unknown task 'detekt'; choose from classify, localize"):
        make_task("detekt", ["a"], (1, 8, 8))
    with pytest.raises(ValueError, match="task classify does not take grid; its arguments: none"):
        make_task("classify", ["a"], (1, 8, 8), grid=2)


def test_classify_wraps_the_existing_loss_and_metrics():
    task = make_task("classify", list("abc"), (1, 8, 8))
    logits, y = torch.randn(50, 3, generator=torch.Generator().manual_seed(0)), torch.arange(50) % 3
    assert task.metrics(logits, y) == metrics_from_logits(logits, y, list("abc"))
    assert isinstance(task.loss(0.1), ClassificationLoss) and task.loss(0.1).label_smoothing == 0.1
    means = task.evaluate_outputs(logits, y)
    assert means == {
        "loss": F.cross_entropy(logits, y).item(),
        "accuracy": (logits.argmax(1) == y).float().mean().item(),
    }
    sums = task.evaluate_sums(logits, y)
    assert sums["accuracy"] == (logits.argmax(1) == y).sum().item() and sums["loss"] / 50 == pytest.approx(
        means["loss"]
    )
    assert task.running(logits, F.one_hot(y, 3).float())["accuracy"].item() == sums["accuracy"]  # soft targets too
    assert task.build(backbone := torch.nn.Linear(2, 3)) is backbone  # a classifier is the network itself


def test_a_checkpoint_written_before_tasks_resumes_its_running_accuracy():
    state = make_trainer().state_dict()
    assert set(state["running"]) == {"loss_sum", "sums", "seen"}
    legacy = {**state, "running": {"loss_sum": torch.tensor(3.0), "correct": torch.tensor(5), "seen": 10}}
    trainer = make_trainer()
    trainer.load_state_dict(legacy)  # its `correct` count is the running accuracy
    assert trainer.running_logs() == {"loss": 0.3, "accuracy": 0.5}
