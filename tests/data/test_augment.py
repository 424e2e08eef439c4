import pytest
import torch
import torch.nn.functional as F

from cnnlab.data import Compose, Normalize
from cnnlab.data.augment import Augment, affine, augment_grid, hflip, parse_spec, translate
from cnnlab.train.losses import ClassificationLoss
from tests.train.helpers import toy_set


def _batch(b=6, c=2, h=12, w=12):
    return torch.randint(1, 256, (b, c, h, w), generator=torch.Generator().manual_seed(0)).float()


def test_mirror_equals_torch_flip():
    x = _batch()
    assert torch.equal(hflip(x), torch.flip(x, dims=[3]))
    mask = torch.tensor([True, False, True, False, False, True])
    out = hflip(x, mask)
    assert torch.equal(out[mask], torch.flip(x[mask], dims=[3])) and torch.equal(out[~mask], x[~mask])


@pytest.mark.parametrize("k", [1, 2, 3])
def test_rotation_by_multiples_of_90_equals_rot90(k):
    x = _batch(h=9, w=9)
    out = affine(x, torch.full((6,), 90.0 * k), torch.ones(6))
    torch.testing.assert_close(out, torch.rot90(x, k, dims=(2, 3)), atol=1e-3, rtol=0)


def test_translation_keeps_pixel_content():
    x = _batch(b=4)
    dy, dx = torch.tensor([2, -1, 0, -3]), torch.tensor([1, 3, -2, 0])
    out = translate(x, dy, dx)
    for i in range(4):
        # the shifted image holds exactly the source pixels that stay inside; the rest is 0
        want = torch.zeros_like(x[i])
        sy, sx = slice(max(-dy[i], 0), 12 - max(dy[i], 0)), slice(max(-dx[i], 0), 12 - max(dx[i], 0))
        ty, tx = slice(max(dy[i], 0), 12 - max(-dy[i], 0)), slice(max(dx[i], 0), 12 - max(-dx[i], 0))
        want[:, ty, tx] = x[i, :, sy, sx]
        assert torch.equal(out[i], want)
    assert torch.equal(translate(x, torch.zeros(4, dtype=torch.long), torch.zeros(4, dtype=torch.long)), x)


def test_augment_is_seeded_per_sample_and_resumable():
    x = _batch(b=64, c=1, h=28, w=28).to(torch.uint8)
    spec = "flip,translate=3,rotate=15,scale=0.1,erase=0.5,cutout=6"
    a, b = Augment(spec, seed=5), Augment(spec, seed=5)
    out = a(x)
    assert out.dtype == torch.float32 and out.shape == x.shape and 0 <= out.min() and out.max() <= 255
    assert torch.equal(out, b(x)) and not torch.equal(out, Augment(spec, seed=6)(x))
    assert not torch.equal(out[0], out[1]) or not torch.equal(x[0], x[1])
    state = a.state_dict()
    nxt = a(x)
    a.load_state_dict(state)
    assert torch.equal(a(x), nxt) and not torch.equal(nxt, out)


def test_composes_with_normalize():
    x = _batch(b=8, c=1).to(torch.uint8)
    norm = Normalize([0.5], [0.25])
    out = Compose([Augment("flip=1"), norm])(x)
    torch.testing.assert_close(out, norm(torch.flip(x, dims=[3])))


@pytest.mark.parametrize("method", ["mixup", "cutmix"])
def test_mixing_gives_soft_targets_the_loss_handles(method):
    x, y = _batch(b=8, c=1), torch.arange(8) % 10
    aug = Augment(f"{method}=1.0", num_classes=10, seed=1)
    mixed, target = aug.mix(x, y)
    assert target.shape == (8, 10) and torch.allclose(target.sum(1), torch.ones(8))
    lam = target[0, y[0]].item()  # weight of the sample's own class (sample 0 is paired with sample 7)
    assert target[0, y[7]].item() == pytest.approx(1 - lam)
    if method == "mixup":
        torch.testing.assert_close(mixed, lam * x + (1 - lam) * x.flip(0))
    else:  # the share of pixels taken from the partner equals the partner's target weight
        from_partner = ((mixed[0] == x[7]) & (mixed[0] != x[0])).float().mean().item()
        assert from_partner == pytest.approx(1 - lam, abs=0.02)
    logits = torch.randn(8, 10)
    want = lam * F.cross_entropy(logits, y, reduction="none") + (1 - lam) * F.cross_entropy(
        logits, y.flip(0), reduction="none"
    )
    assert ClassificationLoss()(logits, target).item() == pytest.approx(want.mean().item(), rel=1e-5)
    smoothed = ClassificationLoss(0.1)(logits, target).item()
    assert smoothed == pytest.approx(F.cross_entropy(logits, target, label_smoothing=0.1).item())


def test_bad_specs_name_the_valid_ones():
    with pytest.raises(ValueError, match="unknown augmentation 'blur'.*flip"):
        parse_spec("flip,blur")
    with pytest.raises(ValueError, match="must be a number"):
        parse_spec("rotate=lots")
    assert parse_spec("crop=4,flip") == {"translate": 4.0, "flip": 0.5}
    with pytest.raises(ValueError, match="number of classes"):
        Augment("mixup")


def test_grid_shows_pairs():
    grid, spec = augment_grid(toy_set(20), "flip=1", n=5, zoom=2)
    # 5 samples → 3 columns × 2 rows of [28 | 1 | 28] cells framed by 3 px: (2·34, 3·63) × zoom 2
    assert grid.dtype == torch.uint8 and grid.shape == (1, 2 * 34 * 2, 3 * 63 * 2) and "flip=1" in spec
