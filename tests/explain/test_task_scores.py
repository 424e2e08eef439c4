"""Saliency and Grad-CAM of a task's score on hand-made models whose score is made by one known region of the image:
the heat sits there and nowhere else, and the maps are torch autograd's; the regions behind a segment's default
pixel."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.explain import heatmaps
from cnnlab.explain.task_scores import components, largest_object_pixel

META = {"mean": [0.0], "std": [1.0]}
K, GRID, SIZE = 2, 4, 16  # classes, cells per side, input side: a cell is a 4×4 block of pixels


class BlockDetector(nn.Module):
    """A detector by construction: conv 3×3 (padded) → ReLU is the feature map; class k's logit at cell (i, j) is
    channel k averaged over the cell's 4×4 block, so it depends only on the block and its one-pixel halo. The output
    is a detector's: (B, GRID², K + 4), the last four columns a box that depends on every pixel."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, K, 3, padding=1)
        with torch.no_grad():  # channel 0: the 3×3 mean (fires on any bright pixel); 1: the pixel itself above 1
            self.conv.weight.zero_()
            self.conv.weight[0] = 1 / 9
            self.conv.weight[1, 0, 1, 1] = 1
            self.conv.bias.copy_(torch.tensor([0.0, -1.0]))
        self.act = nn.ReLU(inplace=True)  # in place: the explanations must not let it write into what they keep

    def forward_features(self, x):
        return self.act(self.conv(x))

    def forward_head(self, a, pre_logits=False):
        cells = F.avg_pool2d(a, SIZE // GRID).flatten(2).transpose(1, 2)  # (B, GRID², K)
        box = a.mean((1, 2, 3))[:, None, None].expand(-1, GRID * GRID, 4)  # every pixel moves the box
        return torch.cat([cells, box], -1)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


def _block(cell: int, halo: int = 0) -> np.ndarray:
    """(SIZE, SIZE) bool: the pixels of `cell`'s block, grown by `halo`."""
    row, col = divmod(cell, GRID)
    side = SIZE // GRID
    out = np.zeros((SIZE, SIZE), bool)
    out[max(row * side - halo, 0) : (row + 1) * side + halo, max(col * side - halo, 0) : (col + 1) * side + halo] = True
    return out


@pytest.fixture
def case():
    model = BlockDetector().eval()
    x = torch.rand(2, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(0)) + 0.5  # 0.5–1.5
    return model, x


@pytest.mark.parametrize("cell", [0, 5, 10, 15])
def test_the_heat_of_a_detection_lies_on_its_cell(case, cell):
    model, x = case
    score = lambda out: out[:, cell, 0]  # noqa: E731
    grad = heatmaps(model, META, x, score, "gradient")
    assert grad.shape == (2, SIZE, SIZE)
    assert (grad[:, ~_block(cell, halo=1)] == 0).all() and (grad[:, _block(cell)] > 0).any(axis=1).all()
    cam = heatmaps(model, META, x, score, "gradcam", layer="act", local=True)
    assert (cam[:, ~_block(cell)] == 0).all() and np.allclose(cam.max((1, 2)), 1)


def test_gradient_saliency_is_the_autograd_gradient_of_the_score(case):
    model, x = case
    leaf = x.clone().requires_grad_(True)
    model(leaf.clone())[:, 6, 1].sum().backward()
    g = leaf.grad.abs().amax(1)
    lo, hi = g.flatten(1).min(1).values[:, None, None], g.flatten(1).max(1).values[:, None, None]
    got = heatmaps(model, META, x, lambda out: out[:, 6, 1], "gradient")
    np.testing.assert_allclose(got, ((g - lo) / (hi - lo)).numpy(), atol=1e-6)


def test_local_gradcam_is_relu_of_gradient_times_map_and_the_averaged_one_spreads(case):
    model, x = case
    a = model.forward_features(x.clone()).detach().requires_grad_(True)
    (g,) = torch.autograd.grad(model.forward_head(a)[:, 9, 0].sum(), a)
    want = torch.relu((g * a.detach()).sum(1))  # the map is at the input's size: no resampling
    lo, hi = want.flatten(1).min(1).values[:, None, None], want.flatten(1).max(1).values[:, None, None]
    got = heatmaps(model, META, x, lambda out: out[:, 9, 0], "gradcam", layer="act", local=True)
    np.testing.assert_allclose(got, ((want - lo) / (hi - lo)).numpy(), atol=1e-6)
    # Grad-CAM's averaged weights light every place where the channel fires, far outside the detection's cell
    spread = heatmaps(model, META, x, lambda out: out[:, 9, 0], "gradcam", layer="act")
    assert (spread[:, ~_block(9, halo=1)] > 0.1).mean() > 0.5


class Gap(nn.Module):
    """conv → ReLU → global average pool → linear: the head for which Grad-CAM's averaging loses nothing."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.conv, self.fc = nn.Conv2d(1, 4, 3, padding=1), nn.Linear(4, 3)

    def forward_features(self, x):
        return torch.relu(self.conv(x))

    def forward_head(self, a, pre_logits=False):
        return self.fc(a.mean((2, 3)))

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


def test_for_a_global_average_pooling_head_local_and_averaged_gradcam_agree():
    model, x = Gap().eval(), torch.randn(3, 1, 8, 8)
    targets = torch.tensor([0, 1, 2])
    np.testing.assert_allclose(
        heatmaps(model, META, x, targets, "gradcam", local=True),
        heatmaps(model, META, x, targets, "gradcam"),
        atol=1e-5,
    )


def test_a_layer_off_the_scores_path_is_refused(case):
    model, x = case
    box_only = lambda out: out[:, 0, K]  # noqa: E731 — the box: every channel moves it, through the mean
    heatmaps(model, META, x, box_only, "gradcam", layer="act")
    with pytest.raises(ValueError, match="has no gradient at layer 'conv'"):
        heatmaps(model, META, x, lambda out: out[:, 0, 0] * 0, "gradcam", layer="conv")
    with pytest.raises(ValueError, match="--layer chooses Grad-CAM's feature map"):
        heatmaps(model, META, x, box_only, "gradient", layer="act")


def test_regions_are_four_connected_and_of_one_class():
    mask = torch.zeros(6, 8, dtype=torch.uint8)
    mask[0, :3] = 1  # a bar on the top row …
    mask[1, 2:4] = 2  # … touching a region of another class: two regions
    mask[4, 0] = mask[4, 7] = 1  # the two ends of a row are not neighbours (no wrap-around)
    mask[5, 1] = 1  # diagonal to (4, 0): not 4-connected
    ids = components(mask)
    assert ids[0, 0] == ids[0, 2] != ids[1, 2] == ids[1, 3]
    assert len({int(ids[4, 0]), int(ids[4, 7]), int(ids[5, 1])}) == 3 and (ids[mask == 0] == 0).all()


def test_the_default_pixel_lies_inside_the_largest_region_even_a_ring():
    mask = torch.zeros(20, 20, dtype=torch.uint8)
    mask[2:18, 2:18] = 3
    mask[5:15, 5:15] = 0  # a ring of 16 × 16 with a 10 × 10 hole: its centroid is in the hole
    mask[0, 0] = 1  # a one-pixel region
    r, c = largest_object_pixel(mask)
    assert mask[r, c] == 3 and abs(r - 9.5) + abs(c - 9.5) <= 7  # on the ring, at the hole's edge nearest the centre
    assert largest_object_pixel(torch.zeros(4, 4, dtype=torch.uint8)) is None
