"""The localization task: its model on any backbone, loss, metrics, decoding, flip TTA, and its model file."""

import pytest
import torch

from cnnlab.data import ImageSet, InMemoryLoader, Normalize
from cnnlab.io import MetaError, RunMeta, load_model, save_model
from cnnlab.models import create_model
from cnnlab.tasks import TaskModel, make_task
from cnnlab.tasks.boxes import generalized_box_iou
from cnnlab.train import Trainer, build_optimizer
from tests.tasks.helpers import CLASSES

SIZE = (1, 32, 32)


def _task(**args):
    return make_task("localize", CLASSES, SIZE, **args)


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("lenet5", {}),
        ("CL8-MP4-CL16-MP4-FC10", {}),
        pytest.param("resnet18", {}, marks=pytest.mark.slow),
        pytest.param("googlenet", {"aux_logits": True}, marks=pytest.mark.slow),
    ],
)
def test_any_backbone_gets_a_box_head_and_keeps_the_model_interface(name, args):
    backbone = create_model(name, num_classes=4, in_chans=1, img_size=32, **args)
    model = _task().build(backbone)
    assert isinstance(model, TaskModel) and model.model_name == name and model.default_cfg["classifier"] == "head.fc"
    model.train()
    out = model(torch.randn(3, *SIZE))
    assert isinstance(out, torch.Tensor) and out.shape == (3, 4 + 4)  # one tensor, even from GoogLeNet in training
    assert ((out[:, 4:] > 0) & (out[:, 4:] < 1)).all()  # the box as fractions of the image
    out.sum().backward()  # the backbone's unused classifier (and auxiliary heads) are gone: no dead weights
    assert all(p.grad is not None for p in model.parameters())
    assert model.forward_head(model.forward_features(torch.zeros(2, *SIZE)), pre_logits=True).shape == (
        2,
        model.head.fc.in_features,
    )
    model.reset_classifier(7)
    assert model.eval()(torch.zeros(1, *SIZE)).shape == (1, 11) and model.model_args["num_classes"] == 7


def test_a_backbone_without_feature_maps_is_refused():
    one_d = create_model("CL8-MP4-FC10", num_classes=4, in_chans=1, img_size=32, dims=1)
    with pytest.raises(ValueError, match="localize needs a backbone whose forward_features gives"):
        make_task("localize", CLASSES, (1, 32)).build(one_d)


def test_the_loss_is_cross_entropy_plus_giou_and_l1_of_the_box():
    task = _task(giou_weight=2.0, l1_weight=5.0)
    target = torch.tensor([[1.0, 8, 8, 24, 16]])  # class 1, box x 8–24, y 8–16 of 32
    exact = torch.tensor([[0.0, 20.0, 0, 0, 0.5, 0.375, 0.5, 0.25]])  # cx 16/32, cy 12/32, w 16/32, h 8/32
    assert task.loss()(exact, target).item() == pytest.approx(
        torch.nn.functional.cross_entropy(exact[:, :4], target[:, 0].long()).item(), abs=1e-5
    )
    off = exact.clone()
    off[0, 4] = 0.75  # the centre moved right by 8 px: IoU 1/3, GIoU 1/3, L1 0.25
    giou = generalized_box_iou(torch.tensor([16.0, 8, 32, 16]), torch.tensor([8.0, 8, 24, 16])).item()
    assert giou == pytest.approx(1 / 3, abs=1e-6)
    extra = task.loss()(off, target) - task.loss()(exact, target)
    assert extra.item() == pytest.approx(2 * (1 - giou) + 5 * 0.25, abs=1e-5)


def test_metrics_on_a_hand_made_case():
    task = _task()
    targets = torch.tensor([[0.0, 0, 0, 16, 16], [1.0, 0, 0, 16, 16], [2.0, 16, 16, 32, 32]])
    outputs = torch.tensor(
        [
            [5.0, 0, 0, 0, 0.25, 0.25, 0.5, 0.5],  # right class, exact box: IoU 1
            [5.0, 0, 0, 0, 0.5, 0.25, 0.5, 0.5],  # wrong class, box shifted by half: IoU 1/3
            [0.0, 0, 5, 0, 0.25, 0.25, 0.5, 0.5],  # right class, box elsewhere: IoU 0
        ]
    )
    result = task.metrics(outputs, targets)
    assert result["accuracy"] == pytest.approx(2 / 3) and result["iou"] == pytest.approx((1 + 1 / 3) / 3, abs=1e-5)
    assert result["loc_accuracy"] == pytest.approx(1 / 3)  # class right and IoU ≥ 0.5: the first only
    assert [row["iou"] for row in result["per_class"]] == pytest.approx([1.0, 1 / 3, 0.0, None], abs=1e-5)
    sums = task.evaluate_sums(outputs, targets)
    assert sums["accuracy"] == 2 and sums["iou"] == pytest.approx(4 / 3, abs=1e-5)
    assert "mean IoU: 0.4444" in task.report(result) and task.score(outputs, targets) == pytest.approx(4 / 9, abs=1e-5)


def test_decode_flip_back_and_draw():
    task = _task()
    out = torch.tensor([[0.0, 3.0, 0, 0, 0.25, 0.5, 0.25, 0.5]])
    pred = task.decode(out, top=2)[0]
    assert pred["class"] == "ring" and pred["box"] == [4.0, 8.0, 12.0, 24.0] and len(pred["top"]) == 2
    assert task.describe(pred).startswith("ring 8") and "box x 4.0-12.0, y 8.0-24.0" in task.describe(pred)
    assert task.flip_back(out)[0, 4].item() == 0.75 and torch.equal(task.flip_back(out)[0, 5:], out[0, 5:])
    im = task.draw(torch.zeros(SIZE, dtype=torch.uint8), pred)
    assert im.width >= 256 and im.mode == "RGB"


def test_a_model_file_rebuilds_the_task_model(tmp_path):
    model = _task(grid=2, hidden=32).build(create_model("lenet5", num_classes=4, in_chans=1, img_size=32))
    meta = RunMeta.for_model(
        model, classes=CLASSES, input_size=list(SIZE), task="localize", task_args={"grid": 2, "hidden": 32}
    )
    save_model(tmp_path / "m.safetensors", model, meta)
    again, read = load_model(tmp_path / "m.safetensors")
    x = torch.randn(2, *SIZE)
    assert read.task == "localize" and read.task_args == {"grid": 2, "hidden": 32}
    assert torch.equal(again(x), model.eval()(x))
    raw = meta.to_dict()
    with pytest.raises(MetaError, match="unknown task 'segmentize'"):
        RunMeta.from_dict({**raw, "task": "segmentize"}, "f")
    with pytest.raises(MetaError, match="task localize does not take depth"):
        RunMeta.from_dict({**raw, "task_args": {"depth": 3}}, "f")
    assert RunMeta.from_dict({k: v for k, v in raw.items() if k not in ("task", "task_args")}, "f").task == "classify"


def _box_data(n=64, seed=0):
    """A bright square (class 0) or ring (class 1) at a random place: learnable in a few steps."""
    g = torch.Generator().manual_seed(seed)
    images, boxes = torch.zeros(n, *SIZE, dtype=torch.uint8), torch.zeros(n, 5)
    for i in range(n):
        side, (top, left) = 10, torch.randint(0, 22, (2,), generator=g).tolist()
        images[i, 0, top : top + side, left : left + side] = 220
        if i % 2:
            images[i, 0, top + 3 : top + side - 3, left + 3 : left + side - 3] = 0
        boxes[i] = torch.tensor([i % 2, left, top, left + side, top + side])
    return ImageSet(images, boxes, CLASSES[:2], "box")


@pytest.mark.slow
def test_the_trainer_trains_a_localizer_with_the_tasks_metrics():
    data = _box_data()
    task = make_task("localize", data.classes, SIZE, hidden=64)
    torch.manual_seed(0)
    model = task.build(create_model("lenet5", num_classes=2, in_chans=1, img_size=32))
    norm = Normalize([0.1], [0.3])
    trainer = Trainer(model, build_optimizer("adam", model, 3e-3), task.loss(), "cpu", "fp32", task=task)
    history = trainer.fit(
        InMemoryLoader(data, 16, shuffle=True, transform=norm), 6, InMemoryLoader(data, 32, transform=norm)
    )
    assert set(history[0]) >= {"loss", "accuracy", "iou", "val_loss", "val_accuracy", "val_iou"}
    assert history[-1]["loss"] < history[0]["loss"] and history[-1]["val_iou"] > history[0]["val_iou"]
    state = trainer.state_dict()
    assert set(state["running"]["sums"]) == {"accuracy", "iou"}
