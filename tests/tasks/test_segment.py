"""The segmentation task: stages found on any backbone, both decoders and both upsamplings, the loss with the
ignore index, the metrics on hand-worked cases, decoding and drawing, flip TTA, and its model file."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnlab.io import RunMeta, load_model, save_model
from cnnlab.models import create_model
from cnnlab.tasks import TaskModel, make_task
from cnnlab.tasks.segment import (
    SegmentationLoss,
    Up,
    find_stages,
    iou_from_confusion,
    pixel_confusion,
    soft_dice,
)

CLASSES = ["background", "square", "ring"]
SIZE = (1, 32, 32)


def _task(**args):
    return make_task("segment", CLASSES, SIZE, **args)


def _logits(mask: torch.Tensor, k: int = 3) -> torch.Tensor:
    """Logits (1, k, H, W) whose argmax is `mask` (H, W)."""
    return torch.nn.functional.one_hot(mask.long(), k).permute(2, 0, 1)[None].float() * 10


@pytest.mark.slow
def test_stages_are_where_the_spatial_size_drops():
    stages = find_stages(create_model("resnet18", num_classes=3, in_chans=1), SIZE)
    assert [(s.name, s.channels, s.size) for s in stages] == [
        ("act", 64, (16, 16)),
        ("layer1", 64, (8, 8)),
        ("layer2", 128, (4, 4)),
        ("layer3", 256, (2, 2)),
    ]
    vgg = find_stages(create_model("vgg11", num_classes=3, in_chans=1), SIZE)
    assert [s.name for s in vgg] == ["features.1", "features.4", "features.9", "features.14", "features.19"]


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("lenet5", {}),
        ("CL8-MP4-CL16-MP4-FC10", {"decoder": "fcn"}),
        ("CL8-MP4-CL16-MP4-FC10", {"upsample": "resize"}),
        pytest.param("resnet18", {}, marks=pytest.mark.slow),
        pytest.param("resnet18", {"decoder": "fcn", "upsample": "resize"}, marks=pytest.mark.slow),
        pytest.param("vgg11", {}, marks=pytest.mark.slow),
        pytest.param("googlenet", {"aux_logits": True}, marks=pytest.mark.slow),
    ],
)
def test_any_backbone_gets_a_decoder_giving_logits_per_pixel(name, args):
    args = dict(args)
    model_args = {k: args.pop(k) for k in list(args) if k not in ("decoder", "upsample")}  # e.g. aux_logits
    model = _task(**args).build(create_model(name, num_classes=3, in_chans=1, img_size=32, **model_args))
    assert isinstance(model, TaskModel) and model.model_name == name and model.default_cfg["classifier"] == "head.fc"
    model.train()
    out = model(torch.randn(2, *SIZE))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 3, 32, 32)
    out.sum().backward()  # the backbone's classifier is gone and every stage feeds the decoder: no dead weights
    assert all(p.grad is not None for p in model.parameters())
    model.reset_classifier(5)
    assert model.eval()(torch.zeros(1, *SIZE)).shape == (1, 5, 32, 32)


def test_a_backbone_without_feature_maps_is_refused():
    one_d = create_model("CL8-MP4-FC10", num_classes=3, in_chans=1, img_size=32, dims=1)
    with pytest.raises(ValueError, match="segment needs a backbone whose forward_features gives"):
        make_task("segment", CLASSES, (1, 32)).build(one_d)


def test_an_odd_input_size_is_upsampled_back_exactly():
    task = make_task("segment", CLASSES, (1, 28, 28))
    model = task.build(create_model("lenet5", num_classes=3, in_chans=1, img_size=28)).eval()
    assert model(torch.zeros(1, 1, 28, 28)).shape == (1, 3, 28, 28)


@pytest.mark.slow
def test_a_copy_has_its_own_taps_and_gives_the_same_outputs():
    model = _task().build(create_model("lenet5", num_classes=3, in_chans=1, img_size=32)).eval()
    twin, x = copy.deepcopy(model), torch.randn(2, *SIZE)
    assert twin.head.taps is not model.head.taps
    torch.testing.assert_close(twin(x), model(x))
    with pytest.raises(ValueError, match="needs the backbone's stage outputs of the same forward pass"):
        model.forward_head(torch.zeros(1, 120, 1, 1))


@pytest.mark.parametrize(("skips", "scored"), [(0, []), (1, [16]), (2, [16, 8]), (9, [16, 8])])
def test_fcn_adds_the_scores_of_as_many_stages_as_skips_asks(skips, scored):
    # CL8-MP4-CL16-MP4 at 32 px: stages of 8 channels at 32 px and 16 channels at 16 px, then the final 8×8 map;
    # skips beyond the backbone's stages stops at its finest one (the input's own resolution here)
    model = _task(decoder="fcn", skips=skips).build(create_model("CL8-MP4-CL16-MP4-FC10", num_classes=3, in_chans=1))
    assert [score.in_channels for score in model.head.scores] == scored
    out = model.train()(torch.randn(2, *SIZE))
    assert out.shape == (2, 3, 32, 32)
    out.sum().backward()
    assert all(p.grad is not None for p in model.head.parameters())


@pytest.mark.parametrize(("upsample", "mode"), [("transpose", "nearest"), ("resize", "bilinear")])
def test_fcn_upsampling_starts_as_plain_upsampling_of_each_score_map(upsample, mode):
    # the coarse class scores reach the output whole from the first step (PyTorch's random init shrinks them)
    up = Up(5, 5, (6, 6), (12, 12), upsample)
    up.start_as_upsampling()
    x = torch.randn(2, 5, 6, 6)
    expected = F.interpolate(x, size=(12, 12), mode=mode, **({} if mode == "nearest" else {"align_corners": False}))
    torch.testing.assert_close(up(x), expected)
    head = _task(decoder="fcn", upsample=upsample).build(create_model("lenet5", num_classes=3, in_chans=1)).head
    for up in [*head.ups, head.to_input]:
        assert up.conv.weight.abs().sum() == up.conv.in_channels * up.conv.weight[0, 0].abs().sum()  # diagonal


def test_unknown_task_arguments_are_refused():
    with pytest.raises(ValueError, match="decoder=segnet; choose from unet, fcn"):
        _task(decoder="segnet")
    with pytest.raises(ValueError, match="upsample=nearest; choose from transpose, resize"):
        _task(upsample="nearest")
    with pytest.raises(ValueError, match="dice_weight=much; a number ≥ 0"):
        _task(dice_weight="much")
    with pytest.raises(ValueError, match="skips=-1; a whole number ≥ 0"):
        _task(skips=-1)


def test_metrics_on_a_hand_worked_case():
    # truth: 2 rows background, 1 row class 1, 1 row class 2 (4 pixels each), one pixel ignored;
    # prediction: class 1 spills onto one background pixel, class 2 is never predicted
    truth = torch.tensor([[0, 0, 0, 0], [0, 0, 0, 255], [1, 1, 1, 1], [2, 2, 2, 2]], dtype=torch.uint8)
    pred = torch.tensor([[0, 0, 0, 1], [0, 0, 0, 0], [1, 1, 1, 1], [0, 0, 1, 1]])
    conf = pixel_confusion(pred, truth, 3)
    assert conf.tolist() == [[6, 1, 0], [0, 4, 0], [2, 2, 0]]  # 15 pixels: the ignored one is not counted
    ious = iou_from_confusion(conf)
    assert ious == pytest.approx([6 / 9, 4 / 7, 0.0])  # 6 / (6+1+2); 4 / (4+1+2); 0 / 4
    result = _task().metrics(_logits(pred), truth[None])
    assert result["accuracy"] == pytest.approx(10 / 15) and result["miou"] == pytest.approx((6 / 9 + 4 / 7) / 3)
    assert [r["pixels"] for r in result["per_class"]] == [7, 4, 4] and result["per_class"][2]["predicted"] == 0
    assert "mean IoU: 0.4127   pixel accuracy: 0.6667" in _task().report(result)


def test_a_class_neither_present_nor_predicted_has_no_iou_and_is_left_out_of_the_mean():
    truth = torch.tensor([[0, 1], [0, 1]], dtype=torch.uint8)
    result = _task().metrics(_logits(truth), truth[None])
    assert [r["iou"] for r in result["per_class"]] == [1.0, 1.0, None] and result["miou"] == 1.0
    assert "—" in _task().report(result)


def test_the_loss_leaves_ignored_pixels_out():
    truth = torch.tensor([[[1, 255], [2, 0]]], dtype=torch.uint8)
    logits = torch.randn(1, 3, 2, 2)
    kept = torch.nn.functional.cross_entropy(
        logits[0].permute(1, 2, 0).reshape(-1, 3)[[0, 2, 3]], torch.tensor([1, 2, 0])
    )
    assert SegmentationLoss()(logits, truth).item() == pytest.approx(kept.item(), rel=1e-6)
    changed = logits.clone()
    changed[0, :, 0, 1] = torch.tensor([50.0, -50.0, 3.0])  # whatever the ignored pixel scores, the loss is the same
    assert SegmentationLoss(dice_weight=1.0)(changed, truth).item() == pytest.approx(
        SegmentationLoss(dice_weight=1.0)(logits, truth).item(), rel=1e-6
    )
    all_ignored = torch.full((1, 2, 2), 255, dtype=torch.uint8)
    assert SegmentationLoss()(logits, all_ignored).item() == 0.0  # not NaN


def test_soft_dice_of_a_perfect_prediction_is_one():
    truth = torch.tensor([[[0, 1], [2, 2]]])
    assert soft_dice(_logits(truth[0]) * 10, truth).item() == pytest.approx(1.0, abs=1e-4)


def test_decode_counts_pixels_and_draws_the_mask_and_overlay():
    mask = torch.zeros(32, 32, dtype=torch.uint8)
    mask[4:12, 4:12], mask[20:24, :] = 1, 2
    task = _task()
    pred = task.decode(_logits(mask))[0]
    assert pred["pixels"] == {"background": 1024 - 64 - 128, "ring": 128, "square": 64}
    assert task.json(pred) == {"pixels": pred["pixels"]} and task.describe(pred).startswith("background 81.2%")
    image = torch.zeros(1, 32, 32, dtype=torch.uint8)
    drawn = task.drawings(image, pred)
    assert set(drawn) == {"pred", "mask"} and drawn["mask"].mode == "P"
    assert np.array_equal(np.asarray(drawn["mask"]), mask.numpy())  # indices, read back as masks: reads them
    overlay = np.asarray(drawn["pred"])
    assert overlay.shape[:2] >= (256, 256) and overlay[0, 0].tolist() == [0, 0, 0] and overlay[40, 40].any()


def test_flip_back_mirrors_every_pixel():
    out = torch.arange(12.0).reshape(1, 1, 3, 4)
    assert torch.equal(_task().flip_back(out)[0, 0, 0], torch.tensor([3.0, 2.0, 1.0, 0.0]))


@pytest.mark.slow
def test_a_model_file_rebuilds_the_decoder(tmp_path):
    task = _task(decoder="fcn", upsample="resize")
    model = task.build(create_model("lenet5", num_classes=3, in_chans=1, img_size=32)).eval()
    args = {"decoder": "fcn", "upsample": "resize"}
    meta = RunMeta.for_model(model, classes=CLASSES, input_size=list(SIZE), task="segment", task_args=args)
    save_model(tmp_path / "m.safetensors", model, meta)
    loaded, back = load_model(tmp_path / "m.safetensors")
    x = torch.randn(2, *SIZE)
    torch.testing.assert_close(loaded.eval()(x), model(x))
    assert back.make_task().output_shape == (3, 32, 32)


@pytest.mark.slow
def test_the_fcn_decoder_with_transposed_convolutions_exports_to_the_same_pixels(tmp_path):
    pytest.importorskip("onnxruntime")
    from cnnlab.deploy.export import export_onnx
    from cnnlab.deploy.onnx_runtime import OnnxClassifier

    model = _task(decoder="fcn").build(create_model("lenet5", num_classes=3, in_chans=1, img_size=32)).eval()
    meta = RunMeta.for_model(
        model, classes=CLASSES, input_size=list(SIZE), task="segment", task_args={"decoder": "fcn"}
    )
    export_onnx(model, meta, tmp_path / "m.onnx")
    onnx = OnnxClassifier(tmp_path / "m.onnx", tta=False)
    images = torch.randint(0, 256, (4, *SIZE), dtype=torch.uint8)
    got = onnx.logits(images)
    with torch.no_grad():
        want = model(torch.from_numpy(onnx.normalize(images)))
    assert got.shape == want.shape == (4, 3, 32, 32)
    assert (got.argmax(1) == want.argmax(1)).float().mean() >= 0.999


def test_summary_of_a_model_name_shows_the_decoder_its_task_args_ask_for(capsys):
    from cnnlab.cli import main

    assert main(["summary", "lenet5", "--task", "segment", "--input", "1x32x32", "--task-arg", "decoder=fcn"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("head.")}
    assert {"head.fc", "head.scores.0", "head.scores.1", "head.to_input.conv"} <= set(rows)
    assert rows["head.to_input.conv"][1:4] == ["ConvTranspose2d", "2/2/0", "10×32×32"]  # k/s/p, then output
