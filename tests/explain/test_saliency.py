"""Saliency and Grad-CAM: the heat lies on the object, and gradients work with in-place ReLU and frozen models."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from cnnlab.explain import saliency, to_input
from cnnlab.explain.saliency import METHODS
from cnnlab.models import create_model


def object_share(heat: np.ndarray, objects: torch.Tensor) -> float:
    """Fraction of images whose mean saliency on object pixels exceeds the mean on background pixels."""
    objects = objects.numpy()
    return float(np.mean([h[o].mean() > h[~o].mean() for h, o in zip(heat, objects, strict=True)]))


@pytest.mark.fashion
@pytest.mark.parametrize("method", ["gradient", "smoothgrad", "integrated-gradients"])
def test_saliency_lies_on_the_garment(fashion_lenet, method):
    # object = the non-zero pixels of a Fashion-MNIST image, background = its zero pixels (the first 50 test images
    # all have both); the heat is for the true class
    model, meta, test = fashion_lenet
    images, labels = test.images[:50], test.labels[:50]
    heat, targets, probs = saliency(model, meta, to_input(images, meta), labels, method)
    assert heat.shape == (50, 28, 28) and heat.min() >= 0 and heat.max() <= 1
    assert torch.equal(targets, labels) and torch.allclose(probs.sum(1), torch.ones(50))
    assert object_share(heat, images[:, 0] > 0) >= 0.8


def test_gradient_saliency_finds_the_square_of_the_toy_task(toy_lenet):
    # toy task: the class is where a bright 6×6 square (value 230) sits on noise (values < 60); object = the square
    model, meta, test = toy_lenet
    images, labels = test.images[:50], test.labels[:50]
    heat, _, _ = saliency(model, meta, to_input(images, meta), labels, "gradient")
    assert object_share(heat, images[:, 0] == 230) >= 0.8


@pytest.mark.parametrize("method", METHODS)
def test_every_method_finds_the_shape_wherever_it_is(shapes_lenet, method):
    # shape task: the class is which shape (value 230) is drawn, at a random place on noise (values < 60), so the
    # model must look at the shape to classify; object = the shape's pixels. LeNet-5 after one epoch: ≈ 90 % accuracy
    model, meta, test = shapes_lenet
    images, labels = test.images[:50], test.labels[:50]
    heat, _, _ = saliency(model, meta, to_input(images, meta), labels, method)
    assert object_share(heat, images[:, 0] == 230) >= 0.8


def test_gradcam_draws_each_cell_at_the_centre_of_its_receptive_field():
    from cnnlab.explain.saliency import _cam_map, _cell_centres, gradcam_layer

    x = torch.randn(2, 1, 28, 28, requires_grad=True)
    # LeNet-5's conv2 map is 10×10 (valid 5×5 conv on the 14×14 pooled map): cell i is centred on input pixel
    # 2·(i + 2) + 0.5 = 4.5 + 2i, so plain resizing to 28×28 (centres 0.9 + 2.8i) would push the heat outwards
    model = create_model("lenet5").eval()
    pool = gradcam_layer(model, x)
    a, _ = _cam_map(model, x, pool)
    assert a.shape[2:] == (10, 10) and _cell_centres(model, x, pool) == [(4.5, 2.0), (4.5, 2.0)]
    # padded convolutions: receptive fields reach the border, the map covers the frame, plain resizing is right
    model = create_model("lecture_cnn").eval()
    assert _cell_centres(model, x, gradcam_layer(model, x)) == [None, None]


class GapNet(nn.Module):
    """conv → ReLU (features) → global average pool → linear (head): the architecture CAM was defined for."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward_features(self, x):
        return torch.relu(self.conv(x))

    def forward_head(self, x, pre_logits=False):
        x = x.mean((2, 3))
        return x if pre_logits else self.fc(x)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


def test_gradcam_equals_cam_for_a_global_average_pooling_head():
    # with GAP + linear, ∂ score_c / ∂ A_k(i, j) = w_ck / (h·w), so Grad-CAM is CAM: ReLU(Σ_k w_ck A_k), scaled
    torch.manual_seed(0)
    model = GapNet().eval()
    meta = {"mean": [0.5], "std": [0.5]}
    x = torch.randn(2, 1, 8, 8)
    heat, targets, _ = saliency(model, meta, x, torch.tensor([2, 0]), "gradcam")
    a = model.forward_features(x).detach()
    cam = torch.relu(torch.einsum("bkhw,bk->bhw", a, model.fc.weight[targets].detach()))
    lo, hi = cam.flatten(1).min(1).values, cam.flatten(1).max(1).values
    np.testing.assert_allclose(heat, ((cam - lo[:, None, None]) / (hi - lo)[:, None, None]).numpy(), atol=1e-5)


def test_inplace_relu_and_frozen_eval_model_give_the_same_maps(toy_lenet):
    model, meta, test = toy_lenet
    x = to_input(test.images[:8], meta)
    frozen = copy.deepcopy(model).eval()
    for m in frozen.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = True
    for p in frozen.parameters():
        p.requires_grad_(False)
    for method in ("gradient", "smoothgrad", "integrated-gradients", "gradcam"):
        want, _, _ = saliency(model, meta, x, method=method)
        got, _, _ = saliency(frozen, meta, x, method=method)
        np.testing.assert_allclose(got, want, atol=1e-5)
    assert all(p.grad is None for p in model.parameters())  # explanations never touch parameter gradients


def test_gradient_saliency_is_the_autograd_gradient(toy_lenet):
    # the course's definition: max over channels of |∂ score / ∂ x|, scaled to 0–1 per image
    model, meta, test = toy_lenet
    x = to_input(test.images[:1], meta).requires_grad_(True)
    model(x)[0, 3].backward()
    g = x.grad[0].abs().amax(0)
    want = ((g - g.min()) / (g.max() - g.min())).numpy()
    heat, _, _ = saliency(model, meta, x.detach(), torch.tensor([3]), "gradient")
    np.testing.assert_allclose(heat[0], want, atol=1e-6)


def test_unknown_method_is_refused(toy_lenet):
    model, meta, test = toy_lenet
    with pytest.raises(ValueError, match="gradcam"):
        saliency(model, meta, to_input(test.images[:1], meta), method="lime")


def test_gradcam_reads_the_last_conv_map_before_the_final_pooling():
    from cnnlab.explain.saliency import gradcam_layer
    from cnnlab.models import create_model

    x = torch.zeros(1, 1, 28, 28)
    # VGG-style stacks end forward_features in a pool: Grad-CAM reads that pool's input (7×7 here, not 3×3)
    assert gradcam_layer(create_model("lecture_cnn").eval(), x) == "features.12"
    assert gradcam_layer(create_model("lenet5").eval(), x) == "features.5"
    # ResNet's forward_features ends in a residual stage: its output is the map
    assert gradcam_layer(create_model("resnet18", num_classes=10, in_chans=1, small_input=True).eval(), x) is None
