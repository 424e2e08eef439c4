"""Data augmentation on whole batches on the training device, seeded, composable with Normalize.

`Augment("flip,translate=2,rotate=10")` maps a uint8 (or 0–255 float) batch (B, C, H, W) to a float batch on the
0–255 scale, so `Compose([augment, normalize])` is the training transform. Each sample gets its own random draw,
from the Augment's own generator (on the device: no host round trip per batch), whose state can be saved and
restored for an exact resume. Mixup / cutmix change the targets as well, so they run as `augment.mix(x, y)` on the
(normalized) batch and return soft targets (B, classes).

Boxes and masks move with the pixels: `augment.transform(x, targets, kind)` makes the same random draws as
`augment(x)` and moves the targets of `kind` (data/targets.py) by the same flip, shift and affine map — boxes by
their corners, masks nearest-neighbour. Erasing and cutout change pixels, not geometry: targets stay.
"""

from __future__ import annotations

import math
import random

import torch
import torch.nn.functional as F

from cnnlab.data import targets as tg
from cnnlab.data.dataset import ImageSet

# name → (default value, what the value means)
AUGMENTS = {
    "flip": (0.5, "probability of a horizontal mirror"),
    "translate": (2, "largest shift in pixels, each direction (= random crop with that much zero padding)"),
    "crop": (2, "zero padding in pixels before a random crop back to size (same as translate)"),
    "rotate": (10.0, "largest rotation in degrees, either way"),
    "scale": (0.1, "largest relative zoom: a factor in [1 − s, 1 + s]"),
    "erase": (0.5, "probability of random erasing: a random rectangle (2–33 % of the area) filled with noise"),
    "cutout": (8, "side in pixels of a square set to 0 at a random centre"),
    "mixup": (0.2, "alpha of the Beta(alpha, alpha) mixing weight of two samples and their targets"),
    "cutmix": (1.0, "alpha of the Beta(alpha, alpha) area kept when a box is pasted from another sample"),
}


def parse_spec(spec: str | dict | None) -> dict[str, float]:
    """'flip,translate=3,mixup' → {'flip': 0.5, 'translate': 3.0, 'mixup': 0.2}; unknown names list the valid ones."""
    if not spec:
        return {}
    if isinstance(spec, dict):
        items = list(spec.items())
    else:
        items = [part.strip().partition("=")[::2] for part in spec.split(",") if part.strip()]
    out = {}
    for name, value in items:
        name = name.strip().lower()
        if name not in AUGMENTS:
            raise ValueError(
                f"unknown augmentation '{name}'; choose from {', '.join(AUGMENTS)} (e.g. flip,translate=2)"
            )
        try:
            out[name] = float(value) if value not in ("", None) else float(AUGMENTS[name][0])
        except ValueError:
            raise ValueError(f"augmentation {name}={value}: the value must be a number") from None
        if out[name] < 0:
            raise ValueError(f"augmentation {name}={value}: the value must be ≥ 0")
    if "crop" in out:  # pad-and-crop is a translation with zero fill
        out["translate"] = max(out.pop("crop"), out.get("translate", 0.0))
    return out


# ---- deterministic building blocks (tested against torch.flip / torch.rot90)
def hflip(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mirror (B, C, H, W) left–right; with a boolean mask (B,) only those samples."""
    if mask is None:
        return x.flip(-1)
    return torch.where(mask.view(-1, 1, 1, 1), x.flip(-1), x)


def translate(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, pad: int | None = None) -> torch.Tensor:
    """Shift each sample by whole pixels (dy down, dx right; int tensors (B,)), filling with 0: pixel values are kept.

    pad: an upper bound of |dy|, |dx| (given, it spares reading the shifts back from the device).
    """
    b, _, h, w = x.shape
    if pad is None:
        pad = int(max(dy.abs().max(), dx.abs().max())) if dy.numel() else 0
    xp = F.pad(x, (pad, pad, pad, pad))  # (B, C, H + 2p, W + 2p)
    rows = torch.arange(h, device=x.device) + pad - dy.view(-1, 1)  # (B, H): source row of each output row
    cols = torch.arange(w, device=x.device) + pad - dx.view(-1, 1)  # (B, W)
    batch = torch.arange(b, device=x.device).view(-1, 1, 1)
    # advanced indices around a slice put their broadcast shape first: (B, H, W, C) → (B, C, H, W)
    return xp[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def affine(x: torch.Tensor, degrees: torch.Tensor, scale: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Rotate each sample counter-clockwise by `degrees` (B,) and zoom by `scale` (B,) about the centre, 0 fill.

    mode: the sampling, bilinear for images, nearest for masks (a class index must not be interpolated)."""
    rad = degrees.double() * (math.pi / 180.0)  # float64 so that 90° gives cos ≈ 1e-17, not 4e-8
    cos, sin = (torch.cos(rad) / scale).float(), (torch.sin(rad) / scale).float()
    zero = torch.zeros_like(cos)
    # theta maps output (x, y) in [-1, 1] to the input location it samples (y points down in the image)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)  # (B, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=False)


def box_mask(shape: tuple[int, int], top: torch.Tensor, left: torch.Tensor, height: torch.Tensor, width: torch.Tensor):
    """Boolean (B, 1, H, W) that is True inside each sample's rectangle (top, left, height, width: (B,) tensors)."""
    h, w = shape
    rows = torch.arange(h, device=top.device).view(1, h)
    cols = torch.arange(w, device=top.device).view(1, w)
    inside_r = (rows >= top.view(-1, 1)) & (rows < (top + height).view(-1, 1))  # (B, H)
    inside_c = (cols >= left.view(-1, 1)) & (cols < (left + width).view(-1, 1))  # (B, W)
    return (inside_r[:, :, None] & inside_c[:, None, :]).unsqueeze(1)


class Augment:
    """Random augmentations by spec, e.g. 'flip,translate=2,rotate=10,scale=0.1,erase=0.5,cutout=8,mixup=0.2'.

    See AUGMENTS for the names and their value. num_classes is needed for mixup / cutmix (soft targets).
    """

    def __init__(
        self, spec: str | dict | None, num_classes: int | None = None, seed: int = 0, device: str | torch.device = "cpu"
    ) -> None:
        self.ops = parse_spec(spec)
        self.num_classes = num_classes
        if self.mixes and not num_classes:
            raise ValueError("mixup / cutmix need the number of classes to build soft targets")
        self.device = torch.device(device)
        self.generator = torch.Generator(self.device).manual_seed(seed)  # per-sample draws, on the device
        self.host_rng = random.Random(seed)  # per-batch scalars (mixing weight, box): Python floats, no sync

    @property
    def mixes(self) -> bool:
        """Whether `mix` changes batches (mixup or cutmix asked for)."""
        return bool(self.ops.get("mixup") or self.ops.get("cutmix"))

    def _rand(self, n: int) -> torch.Tensor:
        return torch.rand(n, generator=self.generator, device=self.device)

    def _randint(self, low: int, high: int, n: int) -> torch.Tensor:
        return torch.randint(low, high + 1, (n,), generator=self.generator, device=self.device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 or 0–255 float (B, C, H, W) → augmented float (B, C, H, W) on the same 0–255 scale."""
        return self.transform(x)[0]

    def transform(
        self, x: torch.Tensor, targets: torch.Tensor | None = None, kind: str = "label"
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`self(x)` and the batch's targets of `kind` moved with the pixels (the same random draws as `self(x)`:
        a run's augmentation stream does not depend on its task)."""
        x = x.float()
        b, _, h, w = x.shape
        ops = self.ops
        moves = targets is not None and kind != "label"
        if ops.get("flip"):
            flip = self._rand(b) < ops["flip"]
            x = hflip(x, flip)
            if moves:
                targets = _move(kind, targets, lambda m: hflip(m, flip), lambda t: tg.flip_boxes(kind, t, flip, w))
        if ops.get("translate"):
            p = int(ops["translate"])
            dy, dx = self._randint(-p, p, b), self._randint(-p, p, b)
            x = translate(x, dy, dx, pad=p)
            if moves:
                shift = (lambda m: translate(m, dy, dx, pad=p), lambda t: tg.shift_boxes(kind, t, dy, dx, (h, w)))
                targets = _move(kind, targets, *shift)
        if ops.get("rotate") or ops.get("scale"):
            degrees = (self._rand(b) * 2 - 1) * ops.get("rotate", 0.0)
            scale = 1 + (self._rand(b) * 2 - 1) * ops.get("scale", 0.0)
            x = affine(x, degrees, scale)
            if moves:
                turn = (
                    lambda m: affine(m, degrees, scale, mode="nearest"),
                    lambda t: tg.affine_boxes(kind, t, degrees, scale, (h, w)),
                )
                targets = _move(kind, targets, *turn)
        return self._occlude(x, b, h, w), targets

    def _occlude(self, x: torch.Tensor, b: int, h: int, w: int) -> torch.Tensor:
        """Random erasing and cutout: pixels change, the geometry (and so the targets) does not."""
        ops = self.ops
        if ops.get("erase"):
            # Zhong et al.: area 2–33 % of the image, aspect ratio 0.3–3.3 (log-uniform), filled with uniform noise
            area = (0.02 + 0.31 * self._rand(b)) * h * w
            ratio = torch.exp((self._rand(b) * 2 - 1) * math.log(3.3))
            eh = (area * ratio).sqrt().round().clamp(1, h).long()
            ew = (area / ratio).sqrt().round().clamp(1, w).long()
            top = (self._rand(b) * (h - eh + 1)).long()
            left = (self._rand(b) * (w - ew + 1)).long()
            mask = box_mask((h, w), top, left, eh, ew) & (self._rand(b) < ops["erase"]).view(-1, 1, 1, 1)
            noise = torch.rand(x.shape, generator=self.generator, device=self.device) * 255
            x = torch.where(mask, noise, x)
        if ops.get("cutout"):
            # DeVries & Taylor: a size×size square of zeros centred anywhere in the image (it may stick out)
            size = int(ops["cutout"])
            cy, cx = self._randint(0, h - 1, b), self._randint(0, w - 1, b)
            side = torch.full_like(cy, size)
            x = x.masked_fill(box_mask((h, w), cy - size // 2, cx - size // 2, side, side), 0.0)
        return x

    def mix(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mixup or cutmix of each sample with the batch in reverse order → (x, soft targets (B, classes))."""
        target = F.one_hot(y, self.num_classes).float()
        if not self.mixes:
            return x, target
        methods = [m for m in ("mixup", "cutmix") if self.ops.get(m)]
        method = methods[0] if len(methods) == 1 else self.host_rng.choice(methods)
        alpha = self.ops[method]
        lam = self.host_rng.betavariate(alpha, alpha)
        partner = x.flip(0)  # pairing sample i with B-1-i needs no random draw
        if method == "mixup":
            x = lam * x + (1 - lam) * partner
        else:
            h, w = x.shape[-2:]
            cut = math.sqrt(1 - lam)  # the pasted box covers ≈ 1 − lam of the image
            ch, cw = round(h * cut), round(w * cut)
            cy, cx = self.host_rng.randrange(h), self.host_rng.randrange(w)
            y0, y1 = max(cy - ch // 2, 0), min(cy + ch - ch // 2, h)
            x0, x1 = max(cx - cw // 2, 0), min(cx + cw - cw // 2, w)
            x = x.clone()
            x[:, :, y0:y1, x0:x1] = partner[:, :, y0:y1, x0:x1]
            lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)  # the area actually kept after clipping at the border
        return x, lam * target + (1 - lam) * target.flip(0)

    def state_dict(self) -> dict:
        """Both random streams, for an exact resume."""
        version, internal, gauss = self.host_rng.getstate()
        return {"generator": self.generator.get_state(), "host": [version, list(internal), gauss]}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        version, internal, gauss = state["host"]
        self.host_rng.setstate((version, tuple(internal), gauss))

    def __repr__(self) -> str:
        return f"Augment({', '.join(f'{k}={v:g}' for k, v in self.ops.items())})"


def _move(kind: str, targets: torch.Tensor, pixels, boxes) -> torch.Tensor:
    """Apply one geometric change to targets: `pixels` to masks (as a (B, 1, H, W) image), `boxes` to boxes."""
    if kind == "mask":
        return pixels(targets[:, None].float())[:, 0].round().to(targets.dtype)
    return boxes(targets)


def augment_samples(
    data: ImageSet, spec: str | dict | None, n: int = 16, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, str]:
    """`n` random samples of `data` and their augmented versions: (originals, augmented) uint8 (n, C, H, W), the
    labels (n,) and the spec as the Augment read it. Mixup / cutmix are shown mixed in pixel space (the label is
    the original's)."""
    if n < 1:
        raise ValueError(f"--n must be ≥ 1, got {n}")
    aug = Augment(spec, len(data.classes), seed)
    pick = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n]
    x, y = data.images[pick], data.labels[pick]
    shown = aug(x)
    if aug.mixes:
        shown, _ = aug.mix(shown, y)
    return x, shown.round().clamp(0, 255).to(torch.uint8), y, repr(aug)


def augment_grid(
    data: ImageSet, spec: str | dict | None, n: int = 16, seed: int = 0, zoom: int = 4
) -> tuple[torch.Tensor, str]:
    """uint8 image (C, H', W') of `n` random samples, each shown as [original | augmented], enlarged `zoom`×.

    Returns the image and the spec as the Augment read it. Mixup / cutmix are shown mixed in pixel space.
    (`cnnlab augment` draws the same samples with class names and labels: `cnnlab.plots.plot_augment`.)
    """
    x, shown, _, spec_text = augment_samples(data, spec, n, seed)
    b, c, h, w = x.shape
    white = torch.full((b, c, h, 1), 255, dtype=torch.uint8)
    cells = F.pad(torch.cat([x, white, shown], 3), (3, 3, 3, 3), value=128)  # (B, C, h+6, 2w+7), grey frame
    cols = math.ceil(math.sqrt(b))
    rows = math.ceil(b / cols)
    cells = torch.cat([cells, torch.full((rows * cols - b, *cells.shape[1:]), 128, dtype=torch.uint8)])
    ch, cw = cells.shape[-2:]
    # (rows·cols, C, ch, cw) → (C, rows·ch, cols·cw)
    grid = cells.view(rows, cols, c, ch, cw).permute(2, 0, 3, 1, 4).reshape(c, rows * ch, cols * cw)
    return grid.repeat_interleave(zoom, 1).repeat_interleave(zoom, 2), spec_text
