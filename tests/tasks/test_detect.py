"""The detection task: its grid head on any backbone, target assignment and loss on hand-worked cases, NMS against a
brute-force reference, COCO-style mAP against pycocotools, decoding, flip TTA and its model file."""

import math

import numpy as np
import pytest
import torch

from cnnlab.io import RunMeta, load_model, save_model
from cnnlab.models import create_model
from cnnlab.tasks import TaskModel, make_task
from cnnlab.tasks.average_precision import average_precision, batched_nms
from cnnlab.tasks.boxes import box_iou
from cnnlab.tasks.detect import FOCAL_ALPHA, assign, focal_loss
from tests.tasks.helpers import CLASSES

SIZE = (1, 32, 32)
PAD = [-1.0, 0, 0, 0, 0]


def _task(**args):
    return make_task("detect", CLASSES, SIZE, **args)


def _assert_close(got: torch.Tensor, want: torch.Tensor, atol: float = 1e-5, rtol: float = 0.0) -> None:
    """torch.allclose with the values in the message (torch.testing.assert_close's first call imports for ~1 s)."""
    assert torch.allclose(got, want, atol=atol, rtol=rtol), f"{got} != {want}"


def _outputs(task, cells: dict, default_logit: float = -20.0) -> torch.Tensor:
    """One image's raw outputs: every logit `default_logit`, every box (0, 0, 1, 1), except cells given as
    {cell: (class logits, box)}."""
    k = task.num_classes
    out = torch.full((1, task.grid**2, k + 4), default_logit)
    out[0, :, k:] = torch.tensor([0.0, 0, 1, 1])
    for cell, (logits, box) in cells.items():
        out[0, cell, :k] = torch.tensor(logits, dtype=torch.float32)
        out[0, cell, k:] = torch.tensor(box, dtype=torch.float32)
    return out


@pytest.mark.parametrize(
    ("name", "args"),
    [("lenet5", {}), ("CL8-MP4-CL16-MP4-FC10", {}), pytest.param("resnet18", {}, marks=pytest.mark.slow)],
)
def test_any_backbone_gets_a_grid_head_and_keeps_the_model_interface(name, args):
    backbone = create_model(name, num_classes=4, in_chans=1, img_size=32, **args)
    model = _task(grid=4).build(backbone)
    assert isinstance(model, TaskModel) and model.default_cfg["classifier"] == "head.fc"
    out = model.train()(torch.randn(3, *SIZE))
    assert out.shape == (3, 16, 4 + 4)  # 4×4 cells, each 4 class logits and a box
    boxes = out[..., 4:]
    assert (boxes[..., 2] > boxes[..., 0]).all() and (boxes[..., 3] > boxes[..., 1]).all()  # positive sizes
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.reset_classifier(7)
    assert model.eval()(torch.zeros(1, *SIZE)).shape == (1, 16, 11)


def test_boxes_are_decoded_around_the_cell_centres():
    model = _task(grid=4).build(create_model("lenet5", num_classes=4, in_chans=1, img_size=32))
    torch.nn.init.zeros_(model.head.box.weight)
    torch.nn.init.zeros_(model.head.box.bias)  # every side softplus(0) = ln 2 strides from the centre
    out = model.eval()(torch.zeros(1, *SIZE))
    side = math.log(2) * 8  # stride 32 / 4 = 8 px
    _assert_close(out[0, 0, 4:], torch.tensor([4 - side, 4 - side, 4 + side, 4 + side]))
    _assert_close(out[0, 6, 4:], torch.tensor([20 - side, 12 - side, 20 + side, 12 + side]))  # row 1, col 2


def test_each_object_owns_the_cell_of_its_centre_and_the_smaller_wins_a_shared_cell():
    targets = torch.tensor(
        [
            [[2.0, 0, 0, 16, 16], [1.0, 20, 20, 32, 32], PAD],  # centres (8, 8) → cell 0; (26, 26) → cell 3
            [[0.0, 0, 0, 14, 14], [3.0, 4, 4, 10, 10], [1.0, 16, 0, 32, 16]],  # two centres in cell 0: the smaller
        ]
    )
    owner = assign(targets, grid=2, size=(32, 32))
    assert owner.tolist() == [[0, -1, -1, 1], [1, 2, -1, -1]]
    edge = torch.tensor([[[0.0, 24, 24, 32, 40]]])  # a centre on the far edge stays in the last cell
    assert assign(edge, grid=2, size=(32, 32)).tolist() == [[-1, -1, -1, 0]]


def test_focal_loss_on_hand_worked_values():
    logits, truth = torch.tensor([0.0, 0.0, 2.0]), torch.tensor([1.0, 0.0, 0.0])
    p2 = 1 / (1 + math.exp(-2))
    want = [
        FOCAL_ALPHA * 0.5**2 * math.log(2),  # p = 0.5 of a positive
        (1 - FOCAL_ALPHA) * 0.5**2 * math.log(2),  # p = 0.5 of a negative
        (1 - FOCAL_ALPHA) * p2**2 * -math.log(1 - p2),  # a confident false positive weighs most
    ]
    _assert_close(focal_loss(logits, truth), torch.tensor(want), atol=1e-6, rtol=0)


def test_the_loss_is_focal_plus_giou_per_positive_cell():
    task = _task(grid=2, giou_weight=2.0)
    target = torch.tensor([[[1.0, 0, 0, 16, 16], PAD]])  # one object of class 1 in cell 0
    exact = _outputs(task, {0: ([-20, 0, -20, -20], [0, 0, 16, 16])})
    want = FOCAL_ALPHA * 0.25 * math.log(2)  # its class logit 0: p = 0.5; the rest ≈ 0; GIoU 1
    assert task.loss()(exact, target).item() == pytest.approx(want, abs=1e-6)
    beside = _outputs(task, {0: ([-20, 0, -20, -20], [16, 0, 32, 16])})  # touching, no overlap: GIoU 0
    assert task.loss()(beside, target).item() == pytest.approx(want + 2.0, abs=1e-6)
    two = torch.cat([target, torch.tensor([[[1.0, 0, 0, 16, 16], [0.0, 16, 16, 32, 32]]])])
    both = torch.cat(
        [exact, _outputs(task, {0: ([-20, 0, -20, -20], [0, 0, 16, 16]), 3: ([0, -20, -20, -20], [16, 16, 32, 32])})]
    )
    assert task.loss()(both, two).item() == pytest.approx(want, abs=1e-6)  # summed over 3 positives, divided by 3


def test_images_without_objects_have_only_negatives():
    task = _task(grid=2)
    none = torch.zeros(2, 0, 5)  # a set without any object: M = 0
    out = _outputs(task, {0: ([0.0, -20, -20, -20], [0, 0, 16, 16])}).expand(2, -1, -1)
    want = (1 - FOCAL_ALPHA) * 0.25 * math.log(2) * 2  # one logit at p = 0.5 per image, divided by max(0, 1)
    assert task.loss()(out, none).item() == pytest.approx(want, abs=1e-6)
    assert task.running(out, none)["accuracy"].item() == 2  # nothing to get wrong
    result = task.metrics(out, none)
    assert result["objects"] == 0 and result["map"] == 0.0 and all(r["ap"] is None for r in result["per_class"])


def test_metrics_of_perfect_outputs():
    task = _task(grid=2)
    targets = torch.tensor([[[1.0, 0, 0, 16, 16], [3.0, 18, 20, 30, 31]], [[0.0, 4, 16, 12, 30], PAD]])
    out = torch.cat(
        [
            _outputs(task, {0: ([-20, 9, -20, -20], [0, 0, 16, 16]), 3: ([-20, -20, -20, 9], [18, 20, 30, 31])}),
            _outputs(task, {2: ([9, -20, -20, -20], [4, 16, 12, 30])}),
        ]
    )
    result = task.metrics(out, targets)
    assert result["map"] == pytest.approx(1.0) and result["map50"] == pytest.approx(1.0)
    assert result["accuracy"] == 1.0 and result["objects"] == 3 and result["n"] == 2
    assert [r["ap"] for r in result["per_class"]] == [pytest.approx(1.0), pytest.approx(1.0), None, pytest.approx(1.0)]
    assert "mAP@0.5:0.95: 1.0000" in task.report(result) and task.score(out, targets) == pytest.approx(1.0)


def _brute_force_nms(boxes, scores, groups, threshold):
    order = sorted(range(len(boxes)), key=lambda i: (-scores[i], i))
    kept = []
    for i in order:
        if all(groups[j] != groups[i] or box_iou(boxes[i], boxes[j]) <= threshold for j in kept):
            kept.append(i)
    return kept


@pytest.mark.parametrize("seed", range(5))
def test_batched_nms_matches_brute_force(seed):
    g = torch.Generator().manual_seed(seed)
    n = 60
    corner = torch.rand(n, 2, generator=g) * 40
    boxes = torch.cat([corner, corner + 5 + torch.rand(n, 2, generator=g) * 20], 1)
    scores = (torch.rand(n, generator=g) * 10).round() / 10  # ties too
    groups = torch.randint(0, 3, (n,), generator=g)
    for threshold in (0.3, 0.5, 0.7):
        got = batched_nms(boxes, scores, groups, threshold).tolist()
        assert got == _brute_force_nms(boxes, scores.tolist(), groups.tolist(), threshold)
    assert batched_nms(boxes[:0], scores[:0], groups[:0], 0.5).tolist() == []


def _fixture(seed=0, images=12, k=3):
    """Truths and noisy detections (some missed, some false, some duplicated, some with the wrong class)."""
    rng = np.random.default_rng(seed)
    truths, detections = [], []
    for _ in range(images):
        m = int(rng.integers(0, 5))
        xy = rng.uniform(0, 60, (m, 2))
        gt = np.concatenate([xy, xy + rng.uniform(4, 30, (m, 2))], 1).round(1)
        cls = rng.integers(0, k, m)
        boxes, scores, dcls = [], [], []
        for b, c in zip(gt, cls, strict=True):
            for _ in range(int(rng.integers(0, 3))):  # 0 (missed), 1 or 2 (a duplicate) detections
                boxes.append(b + rng.normal(0, 2, 4))
                scores.append(rng.uniform(0.05, 1))
                dcls.append(c if rng.random() > 0.15 else rng.integers(0, k))
        for _ in range(int(rng.integers(0, 3))):  # false detections
            p = rng.uniform(0, 60, 2)
            boxes.append(np.concatenate([p, p + rng.uniform(4, 30, 2)]))
            scores.append(rng.uniform(0.05, 1))
            dcls.append(rng.integers(0, k))
        boxes = np.array(boxes).reshape(-1, 4)
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
        truths.append((torch.tensor(gt).reshape(-1, 4), torch.tensor(cls, dtype=torch.long)))
        detections.append(
            (torch.tensor(boxes), torch.tensor(np.round(scores, 2)), torch.tensor(dcls, dtype=torch.long))
        )
    return detections, truths


def _pycocotools(detections, truths, k, max_detections=100):
    coco_module = pytest.importorskip("pycocotools.coco")
    cocoeval = pytest.importorskip("pycocotools.cocoeval")

    def xywh(b):
        return [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]

    anns = []
    for i, (boxes, cls) in enumerate(truths):
        for b, c in zip(boxes.tolist(), cls.tolist(), strict=True):
            w, h = xywh(b)[2:]  # pycocotools counts a match by the truth's id: ids start at 1
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": c + 1, "bbox": xywh(b), "area": w * h})
            anns[-1]["iscrowd"] = 0
    gt = coco_module.COCO()
    gt.dataset = {
        "images": [{"id": i + 1, "width": 100, "height": 100} for i in range(len(truths))],
        "annotations": anns,
        "categories": [{"id": c + 1, "name": str(c)} for c in range(k)],
    }
    gt.createIndex()
    results = [
        {"image_id": i + 1, "category_id": int(c) + 1, "bbox": xywh(b), "score": float(s)}
        for i, (boxes, scores, cls) in enumerate(detections)
        for b, s, c in zip(boxes.tolist(), scores.tolist(), cls.tolist(), strict=True)
    ]
    ev = cocoeval.COCOeval(gt, gt.loadRes(results), "bbox")
    ev.params.maxDets = [max_detections] * 3  # evaluate() sorts the list: index 2 is the largest
    ev.evaluate()
    ev.accumulate()
    return ev.eval["precision"][:, :, :, 0, 2]  # (T, R, K) at area "all", max_detections per image and class


@pytest.mark.parametrize(("seed", "max_detections"), [(0, 100), (1, 100), (2, 100), (3, 1)])
def test_map_matches_pycocotools(seed, max_detections):
    k = 3
    detections, truths = _fixture(seed, k=k)
    precision = _pycocotools(detections, truths, k, max_detections)
    ours = average_precision(detections, truths, k, max_detections)
    present = precision > -1
    assert ours["map"] == pytest.approx(precision[present].mean(), abs=1e-4)
    assert ours["map50"] == pytest.approx(precision[0][present[0]].mean(), abs=1e-4)
    for c in range(k):
        if present[0, :, c].all():
            assert ours["ap"][c] == pytest.approx(precision[:, :, c].mean(), abs=1e-4)
            assert ours["ap50"][c] == pytest.approx(precision[0, :, c].mean(), abs=1e-4)
            np.testing.assert_allclose(ours["precision"][c], precision[0, :, c], atol=1e-4)
        else:
            assert ours["ap"][c] is None


def test_map_on_a_hand_made_case():
    truths = [(torch.tensor([[0.0, 0, 10, 10], [20.0, 20, 30, 30]]), torch.tensor([0, 0]))]
    perfect = [(truths[0][0], torch.tensor([0.9, 0.8]), torch.tensor([0, 0]))]
    assert average_precision(perfect, truths, 2)["map"] == pytest.approx(1.0)
    assert average_precision(perfect, truths, 2)["ap"][1] is None  # class 1 has no objects: no AP
    # a false detection ranked first, then both objects: precision 1/2 at recall 1/2, 2/3 at recall 1 → envelope 2/3
    worse = [
        (
            torch.tensor([[50.0, 50, 60, 60], *truths[0][0].tolist()]),
            torch.tensor([0.95, 0.9, 0.8]),
            torch.tensor([0, 0, 0]),
        )
    ]
    assert average_precision(worse, truths, 2)["map50"] == pytest.approx(2 / 3)


def test_decode_thresholds_suppresses_and_draws():
    task = _task(grid=2, score=0.5)
    out = _outputs(
        task,
        {
            0: ([3.0, -20, -20, -20], [0, 0, 16, 16]),  # square, 95 %
            1: ([2.0, -20, -20, -20], [1, 0, 17, 16]),  # square again, same place: suppressed
            2: ([-20, 1.0, -20, -20], [1, 0, 17, 16]),  # a ring there: another class, kept
            3: ([-20, -20, -1.0, -20], [16, 16, 32, 40]),  # 27 %: under the threshold
        },
    )
    (pred,) = task.decode(out)
    assert [(o["class"], o["box"]) for o in pred["objects"]] == [("square", [0, 0, 16, 16]), ("ring", [1, 0, 17, 16])]
    assert pred["objects"][0]["score"] == pytest.approx(1 / (1 + math.exp(-3)), abs=1e-4)
    assert task.describe(pred).startswith("2 object(s): square 95% at x 0-16, y 0-16; ring 73%")
    assert task.draw(torch.zeros(SIZE, dtype=torch.uint8), pred).size == (256, 256 + 18)
    assert task.describe({"objects": []}) == "no object with a score ≥ 0.5"


def test_engines_agree_when_they_detect_the_same_classes():
    task = _task(grid=2, score=0.5)
    one = _outputs(task, {0: ([3.0, -20, -20, -20], [0, 0, 16, 16]), 3: ([-20, 2, -20, -20], [16, 16, 32, 32])})
    moved = _outputs(task, {0: ([2.0, -20, -20, -20], [1, 0, 16, 16]), 3: ([-20, 4, -20, -20], [16, 16, 30, 32])})
    other = _outputs(task, {0: ([3.0, -20, -20, -20], [0, 0, 16, 16])})  # the ring is no longer found
    assert task.agreement(torch.cat([one, one]), torch.cat([moved, other])) == 0.5


def test_flip_back_mirrors_cells_and_boxes():
    task = _task(grid=2)
    out = _outputs(task, {0: ([1.0, 2, 3, 4], [2, 3, 10, 12])})  # cell 0 (top left)
    back = task.flip_back(out)
    _assert_close(back[0, 1], torch.tensor([1.0, 2, 3, 4, 22, 3, 30, 12]))  # top right, x mirrored
    _assert_close(task.flip_back(back), out)


def test_a_detect_model_file_round_trips(tmp_path):
    model = _task(grid=4, hidden=16).build(create_model("lenet5", num_classes=4, in_chans=1, img_size=32))
    meta = RunMeta.for_model(
        model, classes=CLASSES, input_size=list(SIZE), task="detect", task_args={"grid": 4, "hidden": 16}
    )
    save_model(tmp_path / "m.safetensors", model, meta)
    again, read = load_model(tmp_path / "m.safetensors")
    x = torch.randn(2, *SIZE)
    assert read.task == "detect" and read.make_task().output_shape == (16, 8)
    assert torch.equal(again(x), model.eval()(x))
