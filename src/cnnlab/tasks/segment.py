"""Semantic segmentation: a class for every pixel.

Targets are `mask` (N, H, W) uint8: 0 background, k the k-th class of the run (its classes are `background` then
the object classes), IGNORE (255) left out of the loss and the metrics. The raw output is one tensor
(N, K, H, W) of per-pixel class logits at the input's size, so inference, ONNX export and bench run it as they run
a classifier.

**Stages.** The decoder needs the backbone's feature maps at each resolution, not only the last. They are found
once, on a probe: `forward_features` of one zero image with every sub-module recorded (`models.hooks.record`);
for each spatial size larger than the final map's, the module called last that returns it (a module called once:
a shared ReLU cannot be told apart) ends that stage — `act`, `layer1`, `layer2`, `layer3` of a ResNet,
`features.1`, `.4`, `.9`, … of a VGG. A forward hook on each such module hands its output to the decoder at run
time (`Taps`), so any registered family or notation model with 2-D feature maps works, unchanged, and ONNX export
traces the hooks as it traces the rest. The probe is deterministic: a rebuilt model finds the same stages.

**A whole segmentation net.** A backbone whose `default_cfg` says `per_pixel` (a notation string that ends with a
CL: a U-Net written in one line, `models/notation.py`) already gives (K, H, W) logits: it is the model, as a
classifier is for `classify`; its output shape is checked and `decoder` / `upsample` are refused.

**Decoders** (`--task-arg decoder=`): `unet` (Ronneberger et al., 2015): from the final map up through every
stage, each step upsampling to the stage's size, concatenating the stage's map and two 3×3 conv-BN-ReLU, then up
to the input and a 1×1 conv to class logits (`head.fc`). `fcn` (Long et al., 2015, the FCN-8s scheme): class
scores of the final map (`head.fc`) upsampled and added to the scores of the `skips` stages before it (2 by
default, FCN-8s; a larger number reaches finer stages, down to the input's own resolution), then upsampled to the
input. **Upsampling** (`--task-arg upsample=`): `transpose`, a learnt 2×2 stride-2 ConvTranspose2d (a
bilinear resize makes up the rest where a size is not exactly double, e.g. 7 → 14 → 28 from 3), or `resize`, a
bilinear resize then a 3×3 conv (no checkerboard artefacts).

Loss: per-pixel cross-entropy over the pixels not ignored, + `dice_weight` × (1 − soft Dice) (Milletari et al.,
2016), off by default. Metrics from the pixel confusion matrix: pixel accuracy, each class's IoU
(TP / (TP + FP + FN); None for a class neither present nor predicted), and mIoU, their mean over the classes that
have one, background included.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from cnnlab.data.masks import IGNORE
from cnnlab.layers.conv import ConvNormAct
from cnnlab.models.hooks import record
from cnnlab.tasks.base import Task, TaskModel, _eval, feature_shape
from cnnlab.tasks.classify import confusion_matrix
from cnnlab.tasks.drawing import COLOURS, caption, enlarge

DECODERS = ("unet", "fcn")
UPSAMPLING = ("transpose", "resize")
FCN_SKIPS = 2  # FCN-8s adds the scores of the two stages before the final map (pool4, pool3): the default `skips`
OVERLAY = 0.5  # opacity of the class colours drawn over a predicted image


@dataclass(frozen=True)
class Stage:
    """Where a backbone's feature map of one resolution ends: the module's name, its channels and (h, w)."""

    name: str
    channels: int
    size: tuple[int, int]


def find_stages(backbone: nn.Module, input_size: Sequence[int]) -> list[Stage]:
    """The stages of `backbone` finer than its final feature map, finest first (see the module's docstring)."""
    _, h_in, w_in = input_size
    with torch.no_grad(), _eval(backbone), record(backbone, detach=True) as rec:
        final = backbone.forward_features(torch.zeros(1, *input_size))
    calls = Counter(c.name for c in rec.calls)
    last: dict[tuple[int, int], tuple[str, int]] = {}  # (h, w) → the module returning it last, its channels
    for c in rec.calls:
        out = c.output
        if calls[c.name] == 1 and isinstance(out, torch.Tensor) and out.ndim == 4:
            last[(int(out.shape[2]), int(out.shape[3]))] = (c.name, int(out.shape[1]))
    stages: list[Stage] = []
    smaller = (h_in + 1, w_in + 1)
    for size in sorted(last, reverse=True):  # finest first; each strictly smaller than the one before
        if size[0] < smaller[0] and size[1] < smaller[1] and size[0] > final.shape[2] and size[1] > final.shape[3]:
            stages.append(Stage(last[size][0], last[size][1], size))
            smaller = size
    return stages


class Up(nn.Module):
    """(B, in, h, w) → (B, out, *size): a 2×2 stride-2 ConvTranspose2d (then a bilinear resize where 2h, 2w is not
    `size`), or a bilinear resize then a 3×3 conv. At the same size: a 1×1 conv (nothing when in == out)."""

    def __init__(self, in_chs: int, out_chs: int, in_size: tuple[int, int], size: tuple[int, int], mode: str):
        super().__init__()
        self.size, self.mode = tuple(size), mode
        self.resize_after = mode == "transpose" and (2 * in_size[0], 2 * in_size[1]) != self.size
        if tuple(in_size) == self.size:
            self.mode = "same"
            self.conv = nn.Identity() if in_chs == out_chs else nn.Conv2d(in_chs, out_chs, 1)
        elif mode == "transpose":
            self.conv = nn.ConvTranspose2d(in_chs, out_chs, 2, stride=2)
        else:
            self.conv = nn.Conv2d(in_chs, out_chs, 3, padding=1)

    def start_as_upsampling(self) -> None:
        """Weights that upsample each channel as it is (in == out): a transposed conv copies each pixel to its 2×2
        block, a resize's conv passes it through. FCN's score maps go through a chain of these: from PyTorch's random
        init the coarse class scores reach the output shrunk by each layer and learn slowly, as a deep linear chain
        does (B1, 96 px: the class was not learnt in 6 epochs); FCN initialises its upsampling as bilinear for this."""
        if not isinstance(self.conv, nn.ConvTranspose2d | nn.Conv2d) or self.conv.in_channels != self.conv.out_channels:
            return
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.bias.zero_()
            k = self.conv.weight.shape[-1]
            for c in range(self.conv.in_channels):  # (in, out, 2, 2) or (out, in, 3, 3): channel c to itself
                self.conv.weight[c, c] = 1.0 if self.mode == "transpose" else 0.0
                if self.mode != "transpose":
                    self.conv.weight[c, c, k // 2, k // 2] = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "resize":
            return self.conv(F.interpolate(x, size=self.size, mode="bilinear", align_corners=False))
        x = self.conv(x)
        if self.mode == "transpose" and self.resize_after:
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False)
        return x


class Taps:
    """The stage outputs of the current forward pass, filled by the backbone's forward hooks, emptied by the head.

    A copy of a model (BN folding, export) gets empty taps of its own: its hooks and head share them."""

    def __init__(self) -> None:
        self.out: dict[int, torch.Tensor] = {}

    def __deepcopy__(self, memo) -> Taps:
        return Taps()

    def take(self, count: int) -> list[torch.Tensor]:
        if len(self.out) != count:
            raise ValueError(
                "the segmentation decoder needs the backbone's stage outputs of the same forward pass: call the "
                "model (or forward_features, then forward_head), not forward_head alone"
            )
        outs = [self.out[i] for i in range(count)]
        self.out = {}  # no tensor (nor its autograd graph) outlives the pass
        return outs


class _Tap:
    """Forward hook: store the module's output as stage `index`."""

    def __init__(self, taps: Taps, index: int) -> None:
        self.taps, self.index = taps, index

    def __call__(self, module: nn.Module, args, output: torch.Tensor) -> None:
        self.taps.out[self.index] = output


class DecoderHead(nn.Module):
    """(B, C, h, w) final features, with the stages' maps from `taps` → (B, K, H, W) class logits at the input size.

    `fc` is the class output (a 1×1 conv); `reset(k)` gives new class outputs (FCN scores every level, so all its
    score layers are new)."""

    def __init__(
        self, final: Stage, stages: list[Stage], num_classes: int, size, decoder: str, upsample: str, skips: int
    ):
        super().__init__()
        self.final, self.stages, self.size = final, list(stages), tuple(size)
        self.decoder, self.upsample = decoder, upsample
        self.skips = min(skips, len(self.stages))  # FCN: the stages whose scores are added (a backbone may have fewer)
        self.taps = Taps()
        if decoder == "unet":
            self._build_unet()
        self._build_classes(num_classes)

    def _build_unet(self) -> None:
        ups, blocks, prev = [], [], self.final
        for stage in reversed(self.stages):  # coarsest first
            ups.append(Up(prev.channels, stage.channels, prev.size, stage.size, self.upsample))
            blocks.append(
                nn.Sequential(
                    ConvNormAct(2 * stage.channels, stage.channels, 3, padding=1),
                    ConvNormAct(stage.channels, stage.channels, 3, padding=1),
                )
            )
            prev = stage
        self.ups, self.blocks = nn.ModuleList(ups), nn.ModuleList(blocks)
        out = max(16, prev.channels // 2)
        self.to_input = Up(prev.channels, out, prev.size, self.size, self.upsample)
        self.width = out  # channels of the map the class conv reads (pre_logits)

    def _build_classes(self, k: int) -> None:
        self.num_classes = k
        if self.decoder == "unet":
            self.fc = nn.Conv2d(self.width, k, 1)
            return
        skips = self._fcn_skips()  # the stages just before the final map, coarsest first
        self.fc = nn.Conv2d(self.final.channels, k, 1)
        self.scores = nn.ModuleList(nn.Conv2d(s.channels, k, 1) for s in skips)
        sizes = [self.final.size] + [s.size for s in skips]
        self.ups = nn.ModuleList(Up(k, k, a, b, self.upsample) for a, b in zip(sizes, sizes[1:], strict=False))
        self.to_input = Up(k, k, sizes[-1], self.size, self.upsample)
        for up in [*self.ups, self.to_input]:
            up.start_as_upsampling()

    def _fcn_skips(self, items: list | None = None) -> list:
        """The last `skips` of `items` (default: the stages), coarsest first."""
        items = self.stages if items is None else items
        return items[len(items) - self.skips :][::-1]

    def reset(self, num_classes: int) -> None:
        self._build_classes(num_classes)

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        skips = self.taps.take(len(self.stages))  # finest first
        if self.decoder == "fcn":
            if pre_logits:
                return x
            y = self.fc(x)
            for up, score, skip in zip(self.ups, self.scores, self._fcn_skips(skips), strict=True):
                y = up(y) + score(skip)  # (B, K, h', w') at the stage's size
            return self.to_input(y)
        for up, block, skip in zip(self.ups, self.blocks, reversed(skips), strict=True):
            x = block(torch.cat([up(x), skip], 1))  # (B, C_stage, h', w')
        x = self.to_input(x)  # (B, width, H, W)
        return x if pre_logits else self.fc(x)


class SegmentModel(TaskModel):
    """A TaskModel whose head also reads the backbone's stage outputs, handed over by forward hooks."""

    def __init__(self, backbone: nn.Module, head: DecoderHead, input_size: Sequence[int]) -> None:
        super().__init__(backbone, head, input_size)
        for i, stage in enumerate(head.stages):
            self.backbone.get_submodule(stage.name).register_forward_hook(_Tap(head.taps, i))


class SegmentationLoss:
    """Mean cross-entropy over the pixels not ignored (label smoothing as in F.cross_entropy), + dice_weight ×
    (1 − soft Dice averaged over the classes)."""

    def __init__(self, label_smoothing: float = 0.0, dice_weight: float = 0.0) -> None:
        self.label_smoothing, self.dice_weight = label_smoothing, dice_weight

    def __call__(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        output, target = output.float(), target.long()
        valid = target != IGNORE
        ce = F.cross_entropy(
            output, target, ignore_index=IGNORE, reduction="sum", label_smoothing=self.label_smoothing
        ) / valid.sum().clamp_min(1)
        if not self.dice_weight:
            return ce
        return ce + self.dice_weight * (1 - soft_dice(output, target))


def soft_dice(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over classes of (2·Σ p·t + 1) / (Σ p + Σ t + 1), softmax p and one-hot t over the pixels not ignored."""
    k = logits.shape[1]
    valid = (target != IGNORE).unsqueeze(1)  # (B, 1, H, W)
    probs = logits.softmax(1) * valid
    onehot = F.one_hot(target.clamp_max(k - 1) * (target != IGNORE), k).permute(0, 3, 1, 2) * valid
    inter, total = (probs * onehot).sum((0, 2, 3)), (probs + onehot).sum((0, 2, 3))
    return ((2 * inter + 1) / (total + 1)).mean()


def pixel_confusion(preds: torch.Tensor, targets: torch.Tensor, k: int) -> np.ndarray:
    """counts[i, j] = pixels of true class i predicted as j, over the pixels not ignored."""
    t, p = targets.long().flatten(), preds.long().flatten()
    keep = t != IGNORE
    return confusion_matrix(t[keep].numpy(), p[keep].numpy(), k)


def iou_from_confusion(conf: np.ndarray) -> list[float | None]:
    """Each class's TP / (TP + FP + FN); None where the class is neither in the truth nor predicted."""
    tp = np.diag(conf).astype(float)
    union = conf.sum(0) + conf.sum(1) - tp
    return [float(a / u) if u else None for a, u in zip(tp, union, strict=True)]


def mean_iou(ious: Sequence[float | None]) -> float:
    """The mean of the classes' IoUs that exist (0 when none does)."""
    present = [v for v in ious if v is not None]
    return float(np.mean(present)) if present else 0.0


class Segment(Task):
    """Semantic segmentation: one class per pixel."""

    name = "segment"
    target = "mask"
    running_metrics = ("accuracy",)  # pixel accuracy (each image's share of right pixels, averaged)
    main_metric = "miou"
    HEADLINE = (("miou", "mIoU"), ("accuracy", "pixel accuracy"))
    ARGS = {"decoder": "unet", "upsample": "transpose", "dice_weight": 0.0, "skips": FCN_SKIPS}

    def __init__(self, classes: Sequence[str], input_size: Sequence[int], **args) -> None:
        super().__init__(classes, input_size, **args)
        for key, choices in (("decoder", DECODERS), ("upsample", UPSAMPLING)):
            if self.args[key] not in choices:
                raise ValueError(f"task segment: {key}={self.args[key]}; choose from {', '.join(choices)}")
        dice = self.args["dice_weight"]
        if isinstance(dice, bool) or not isinstance(dice, (int, float)) or not dice >= 0:
            raise ValueError(f"task segment: dice_weight={dice}; a number ≥ 0 (0: cross-entropy alone)")
        self.args["dice_weight"] = float(dice)
        skips = self.args["skips"]
        if isinstance(skips, bool) or not isinstance(skips, int) or skips < 0:
            raise ValueError(f"task segment: skips={skips}; a whole number ≥ 0 (fcn: stages whose scores are added)")

    @property
    def size(self) -> tuple[int, int]:
        return self.input_size[1], self.input_size[2]

    @property
    def output_shape(self) -> tuple[int, ...]:
        return (self.num_classes, *self.size)

    def describe_outputs(self) -> str:
        k, (h, w) = self.num_classes, self.size
        return (
            f"(N, {k}, {h}, {w}): per-pixel logits of the {k} classes (class 0 is background); the argmax over axis "
            "1 is the predicted mask"
        )

    def build(self, backbone: nn.Module) -> nn.Module:
        if getattr(backbone, "default_cfg", {}).get(
            "per_pixel"
        ):  # a whole segmentation net (a notation U-Net): no decoder on top
            return self._whole(backbone)
        shape = feature_shape(backbone, self.input_size)
        if len(shape) != 3:
            raise ValueError(
                f"{backbone.model_name}: segment needs a backbone whose forward_features gives (C, h, w) feature "
                f"maps; it gives {shape}"
            )
        stages = find_stages(backbone, self.input_size)
        final = Stage("", shape[0], (shape[1], shape[2]))
        a = self.args
        head = DecoderHead(final, stages, self.num_classes, self.size, a["decoder"], a["upsample"], a["skips"])
        return SegmentModel(backbone, head, self.input_size)

    def _whole(self, model: nn.Module) -> nn.Module:
        """`model` itself, once its output is checked to be (K, H, W) logits at the input's size."""
        a, name = self.args, model.model_name
        shaping = ("decoder", "upsample", "skips")
        if any(a[k] != self.ARGS[k] for k in shaping):
            raise ValueError(
                f"{name} gives a class per pixel itself, with no decoder to choose: drop --task-arg decoder= / "
                "upsample= / skips= (they shape the decoder put on a backbone)"
            )
        with torch.no_grad(), _eval(model):
            shape = tuple(model(torch.zeros(1, *self.input_size)).shape[1:])
        if shape != self.output_shape:
            raise ValueError(
                f"{name} gives {'×'.join(map(str, shape))} outputs for {'×'.join(map(str, self.input_size))} inputs; "
                f"segment needs {'×'.join(map(str, self.output_shape))} (a class per pixel at the input's size): "
                "upsample (UT, UR) back to the input's size before the last CL"
            )
        return model

    def loss(self, label_smoothing: float = 0.0) -> SegmentationLoss:
        return SegmentationLoss(label_smoothing, self.args["dice_weight"])

    # ---- metrics
    def _pixel_accuracy(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(N,) each image's share of right pixels among those not ignored (1 for an image all ignored)."""
        t = targets.long()
        valid = t != IGNORE
        right, n = ((outputs.argmax(1) == t) & valid).sum((1, 2)), valid.sum((1, 2))
        return torch.where(n > 0, right / n.clamp_min(1), 1.0)

    def running(self, output: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"accuracy": self._pixel_accuracy(output.detach(), target).sum()}

    def evaluate_sums(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        if not len(targets):
            return {"loss": 0.0, "accuracy": 0.0}
        loss = self.loss()(outputs, targets).item() * len(targets)
        return {"loss": loss, "accuracy": self._pixel_accuracy(outputs, targets).sum().item()}

    def metrics(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict:
        """Pixel accuracy, each class's IoU and pixels, mIoU, the loss and the pixel confusion matrix."""
        k = self.num_classes
        conf = pixel_confusion(outputs.argmax(1), targets, k) if len(targets) else np.zeros((k, k), np.int64)
        ious = iou_from_confusion(conf)
        per_class = [
            {"class": c, "iou": v, "pixels": int(conf[i].sum()), "predicted": int(conf[:, i].sum())}
            for i, (c, v) in enumerate(zip(self.classes, ious, strict=True))
        ]
        return {
            "miou": mean_iou(ious),
            "accuracy": float(np.trace(conf) / conf.sum()) if conf.sum() else 0.0,
            "loss": self.loss()(outputs, targets).item() if len(targets) else 0.0,
            "n": int(len(targets)),
            "pixels": int(conf.sum()),
            "per_class": per_class,
            "confusion": conf.tolist(),
        }

    def summary(self, result: dict) -> dict[str, float]:
        return {k: result[k] for k in ("loss", "accuracy", "miou")}

    def report(self, result: dict) -> str:
        lines = [
            f"mean IoU: {result['miou']:.4f}   pixel accuracy: {result['accuracy']:.4f}   loss: {result['loss']:.4f}"
            f"   ({result['n']} images, {result['pixels']:,} pixels)",
            "",
        ]
        width = max(len(c) for c in [*self.classes, "class"]) + 2
        lines.append(f"{'class':<{width}}{'IoU':>8}{'pixels':>12}{'predicted':>12}")
        for row in result["per_class"]:
            iou = f"{row['iou']:.4f}" if row["iou"] is not None else "—"
            lines.append(f"{row['class']:<{width}}{iou:>8}{row['pixels']:>12,}{row['predicted']:>12,}")
        return "\n".join(lines)

    def score(self, outputs: torch.Tensor, targets: torch.Tensor) -> float:
        return mean_iou(iou_from_confusion(pixel_confusion(outputs.argmax(1), targets, self.num_classes)))

    # ---- inference
    def flip_back(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.flip(-1)  # every pixel's scores move back to where they were

    def decode(self, outputs: torch.Tensor, top: int = 3) -> list[dict]:
        """Per image: its mask (uint8 (H, W) tensor, the input's size), and the pixels of each class it holds."""
        masks = outputs.float().argmax(1).to(torch.uint8)  # (N, H, W)
        out = []
        for mask in masks:
            counts = torch.bincount(mask.flatten().long(), minlength=self.num_classes).tolist()
            pixels = {c: n for c, n in sorted(zip(self.classes, counts, strict=True), key=lambda t: -t[1]) if n}
            out.append({"pixels": pixels, "mask": mask})
        return out

    def json(self, prediction: dict) -> dict:
        return {k: v for k, v in prediction.items() if k != "mask"}  # the mask goes to a PNG (--out), not the text

    def describe(self, prediction: dict) -> str:
        total = max(sum(prediction["pixels"].values()), 1)
        return ", ".join(f"{c} {n / total:.1%}" for c, n in prediction["pixels"].items())

    def palette(self) -> list[int]:
        """RGB of each class index: background black, the others the drawing colours in turn."""
        rgb = [(0, 0, 0)] + [tuple(int(c[i : i + 2], 16) for i in (1, 3, 5)) for c in COLOURS]
        colours = [rgb[0]] + [rgb[1 + (k % len(COLOURS))] for k in range(self.num_classes - 1)]
        return [v for c in colours for v in c]

    def mask_image(self, mask: torch.Tensor) -> Image.Image:
        """A palette PNG of the class indices: viewable in colour, read back by `masks:` as indices."""
        im = Image.fromarray(mask.numpy().astype(np.uint8), mode="L").convert("P")
        im.putpalette(self.palette())
        return im

    def draw(self, image: torch.Tensor, prediction: dict) -> Image.Image:
        im, factor = enlarge(image)
        mask = prediction["mask"].numpy()
        colours = np.asarray(self.palette(), np.float32).reshape(-1, 3)[mask]  # (H, W, 3)
        big = np.kron(colours, np.ones((factor, factor, 1), np.float32))  # enlarged as the image was
        base = np.asarray(im, np.float32)
        keep = np.kron(mask == 0, np.ones((factor, factor), bool))[..., None]  # background stays the image
        blended = np.where(keep, base, (1 - OVERLAY) * base + OVERLAY * big)
        return caption(Image.fromarray(blended.round().astype(np.uint8)), self.describe(prediction))

    def drawings(self, image: torch.Tensor, prediction: dict) -> dict[str, Image.Image]:
        return {"pred": self.draw(image, prediction), "mask": self.mask_image(prediction["mask"])}
