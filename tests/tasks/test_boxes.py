"""IoU, GIoU and DIoU against cases worked by hand, and the gradient that makes GIoU a loss where IoU is not."""

import pytest
import torch

from cnnlab.tasks.boxes import box_iou, cxcywh_to_xyxy, distance_box_iou, generalized_box_iou, xyxy_to_cxcywh

A = torch.tensor([0.0, 0.0, 2.0, 2.0])


@pytest.mark.parametrize(
    ("b", "iou", "giou", "diou"),
    [
        # the same box: everything is 1
        ([0, 0, 2, 2], 1.0, 1.0, 1.0),
        # half-overlapping: inter 2, union 6, hull 3×2 = 6; centres (1,1) and (2,1): ρ² = 1, c² = 9 + 4 = 13
        ([1, 0, 3, 2], 2 / 6, 2 / 6, 2 / 6 - 1 / 13),
        # apart by 1: inter 0, union 8, hull 5×2 = 10 → GIoU = −2/10; ρ² = 9, c² = 25 + 4 = 29
        ([3, 0, 5, 2], 0.0, -0.2, -9 / 29),
        # inside: inter 1 = area of b, union 4, hull = a: GIoU = IoU; centres (1,1), (1.5,1.5): ρ² = .5, c² = 8
        ([1, 1, 2, 2], 0.25, 0.25, 0.25 - 0.5 / 8),
    ],
)
def test_iou_family_on_hand_worked_cases(b, iou, giou, diou):
    b = torch.tensor(b, dtype=torch.float32)
    assert box_iou(A, b).item() == pytest.approx(iou, abs=1e-6)
    assert generalized_box_iou(A, b).item() == pytest.approx(giou, abs=1e-6)
    assert distance_box_iou(A, b).item() == pytest.approx(diou, abs=1e-6)
    assert box_iou(b, A).item() == pytest.approx(iou, abs=1e-6)  # symmetric


def test_boxes_broadcast_to_the_matrix_of_every_pair():
    a = torch.tensor([[0.0, 0, 2, 2], [1, 0, 3, 2]])
    b = torch.tensor([[0.0, 0, 2, 2], [3, 0, 5, 2], [1, 1, 2, 2]])
    m = box_iou(a[:, None], b[None])
    assert m.shape == (2, 3)
    assert m[0].tolist() == pytest.approx([1.0, 0.0, 0.25]) and m[1, 1].item() == pytest.approx(0.0)


def test_giou_pulls_apart_boxes_together_where_iou_has_no_gradient():
    b = torch.tensor([3.0, 0, 5, 2], requires_grad=True)
    (1 - box_iou(A, b)).backward()
    assert b.grad.abs().sum() == 0  # no overlap, no signal
    b.grad = None
    (1 - generalized_box_iou(A, b)).backward()
    assert b.grad[0] + b.grad[2] > 0  # moving b left (towards a) lowers the loss


def test_corner_and_centre_forms_round_trip():
    b = torch.tensor([[1.0, 2.0, 5.0, 4.0]])
    assert xyxy_to_cxcywh(b).tolist() == [[3.0, 3.0, 4.0, 2.0]]
    assert torch.equal(cxcywh_to_xyxy(xyxy_to_cxcywh(b)), b)
