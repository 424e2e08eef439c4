"""Which pixels the class score depends on: gradient saliency, SmoothGrad, integrated gradients and Grad-CAM.

All four take a batch of model inputs (B, C, H, W) and a score — a class per image, or any function of the model's
raw outputs that gives one number per image (a detection's class logit at its cell, a pixel's class logit: see
`cnnlab.explain.task_scores`) — and return heatmaps (B, H, W) scaled to 0–1 per image. Gradients
are taken with torch.autograd.grad with respect to the input (or the feature maps) only, so they work for models in
eval mode whose parameters are frozen and do not touch any parameter's .grad; inputs are cloned before the forward
pass, so in-place ReLUs never write into a tensor that autograd needs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.explain._common import explaining, from_pixels, logits_of, map_field
from cnnlab.explain.plotting import figure, save, show
from cnnlab.models.hooks import record

METHODS = ("gradient", "smoothgrad", "integrated-gradients", "gradcam")

Score = Callable[[torch.Tensor], torch.Tensor]  # the model's raw outputs (B, ...) → the score explained, (B,)


def class_score(targets: torch.Tensor) -> Score:
    """The score of a classifier: logit[target] of each image (targets (B,) class indices)."""
    return lambda logits: logits.gather(1, targets[:, None].to(logits.device))[:, 0]


def _as_score(score: torch.Tensor | Score) -> Score:
    return score if callable(score) else class_score(score)


def _score_grad(model: nn.Module, x: torch.Tensor, score: torch.Tensor | Score) -> torch.Tensor:
    """∂ score / ∂ x for every image of the batch, (B, C, H, W); score: class indices (B,) or a `Score`."""
    x = x.detach().requires_grad_(True)
    outputs = logits_of(model, x.clone())  # the clone: an in-place first layer must not write into the leaf
    total = _as_score(score)(outputs).sum()  # images are independent in eval mode: one backward for all
    (grad,) = torch.autograd.grad(total, x)
    return grad


def _per_image01(heat: torch.Tensor) -> np.ndarray:
    """(B, H, W) → each image min–max scaled to 0–1 (as the course shows saliency maps)."""
    flat = heat.flatten(1)
    lo, hi = flat.min(1).values[:, None, None], flat.max(1).values[:, None, None]
    return ((heat - lo) / (hi - lo).clamp_min(1e-12)).cpu().numpy()


def gradient_saliency(model: nn.Module, x: torch.Tensor, targets: torch.Tensor | Score) -> np.ndarray:
    """max over channels of |∂ score / ∂ x| (Simonyan et al. 2014)."""
    return _per_image01(_score_grad(model, x, targets).abs().amax(1))


def smoothgrad(
    model: nn.Module,
    x: torch.Tensor,
    targets: torch.Tensor | Score,
    samples: int = 25,
    noise: float = 0.15,
    seed: int = 0,
) -> np.ndarray:
    """|gradient| averaged over `samples` noisy copies, noise σ = `noise` × the input's value range (Smilkov et al.
    2017; averaging magnitudes rather than signed gradients keeps opposite-signed evidence from cancelling)."""
    gen = torch.Generator(device=x.device).manual_seed(seed)
    sigma = noise * (x.flatten(1).amax(1) - x.flatten(1).amin(1)).view(-1, 1, 1, 1)
    total = torch.zeros_like(x)
    for _ in range(samples):
        total += _score_grad(model, x + sigma * torch.randn(x.shape, generator=gen, device=x.device), targets).abs()
    return _per_image01((total / samples).amax(1))


def integrated_gradients(
    model: nn.Module, x: torch.Tensor, targets: torch.Tensor | Score, baseline: torch.Tensor, steps: int = 32
) -> np.ndarray:
    """(x − baseline) × the gradient averaged on the straight path from baseline to x (Sundararajan et al. 2017).

    Midpoint Riemann sum over `steps`; the baseline (1, C, H, W) is usually the black image.
    """
    total = torch.zeros_like(x)
    for k in range(steps):
        alpha = (k + 0.5) / steps
        total += _score_grad(model, baseline + alpha * (x - baseline), targets)
    return _per_image01(((x - baseline) * total / steps).abs().amax(1))


_POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveMaxPool2d, nn.AdaptiveAvgPool2d)


def gradcam_layer(model: nn.Module, x: torch.Tensor) -> str | None:
    """The pooling module that ends forward_features (the first of a trailing run of pools), or None.

    Grad-CAM reads the last convolutional layer's map, before the final pooling (Selvaraju et al. use VGG's conv5_3,
    not pool5): for models whose forward_features ends in pooling (VGG, AlexNet, LeNet, lecture_cnn) that is the
    input of this module; for the others (ResNet, GoogLeNet) the output of forward_features itself.
    """
    leaves = [n for n, m in model.named_modules() if n and not list(m.children())]
    with torch.no_grad(), record(model, leaves) as rec:
        model.forward_features(x[:1])
    modules = dict(model.named_modules())
    order = [c.name for c in rec.calls]
    first_pool = None
    for name in reversed(order):
        if not isinstance(modules[name], _POOLS):
            break
        first_pool = name
    return first_pool


def _cam_map(
    model: nn.Module, x: torch.Tensor, pool: str | None, layer: str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(feature map A, raw outputs) for inputs x, both in x's graph: A is the output of `layer` when one is given,
    else the input of `pool`, or forward_features' output."""
    if layer is not None:
        with record(model, [layer], clone=True) as rec:  # clone: a later in-place op must not overwrite A
            outputs = logits_of(model, x.clone())
        return rec.output(layer), outputs
    if pool is None:
        a = model.forward_features(x)
        return a, model.forward_head(a.clone())  # the clone: a head starting with an in-place ReLU must not hit A
    with record(model, [pool]) as rec:
        logits = logits_of(model, x.clone())  # the clone: an in-place first layer must not write into the leaf
    return rec.input(pool), logits


def _cell_centres(
    model: nn.Module, x: torch.Tensor, pool: str | None, layer: str | None = None
) -> list[tuple[float, float] | None]:
    """Per spatial axis, (offset, stride) such that cell i of Grad-CAM's map A (`_cam_map`) looks at input pixels
    centred on offset + stride·i.

    From the receptive field of A's cells (`map_field`: the kernel/stride/padding recurrence of `cnnlab summary`):
    offset is the centre of cell 0's field, stride its jump. None for an axis of one cell, where the field is unknown,
    or where the fields of the cells a quarter from either end reach the image border (padded "same" convolutions,
    ResNet's huge fields): there the map covers the whole frame and plain resizing is already right.
    """
    field, shape = map_field(model, x.shape[1:], lambda z: _cam_map(model, z, pool, layer)[0])
    out: list[tuple[float, float] | None] = []
    for axis in (0, 1):
        n, size = shape[2 + axis], x.shape[2 + axis]
        i1, i2 = n // 4, n - 1 - n // 4
        if field is None or i1 >= i2 or field.span(axis, i1)[0] <= 0 or field.span(axis, i2)[1] >= size:
            out.append(None)
        else:
            out.append((field.centre(axis), float(field.jump[axis])))
    return out


def _place(cam: torch.Tensor, geometry: list[tuple[float, float] | None], size: torch.Size) -> torch.Tensor:
    """(B, 1, h, w) cell values → (B, H, W) input pixels: bilinear between the cells' receptive-field centres,
    the edge cells' values held beyond them; an axis without geometry is stretched over the frame as usual."""
    axes = []
    for n, big, geo in zip(cam.shape[2:], size, geometry, strict=True):
        pixels = torch.arange(big, dtype=cam.dtype, device=cam.device)
        if geo is None:  # align_corners=False resizing: cell i covers pixels [i, i + 1) · big / n
            u = (pixels + 0.5) * n / big - 0.5
        else:
            u = (pixels - geo[0]) / geo[1]
        axes.append(2 * u / max(n - 1, 1) - 1 if n > 1 else torch.zeros_like(u))
    gy, gx = torch.meshgrid(*axes, indexing="ij")
    grid = torch.stack((gx, gy), -1).expand(len(cam), -1, -1, -1)
    return F.grid_sample(cam, grid, mode="bilinear", padding_mode="border", align_corners=True)[:, 0]


def gradcam(
    model: nn.Module,
    x: torch.Tensor,
    targets: torch.Tensor | Score,
    layer: str | None = None,
    local: bool = False,
) -> np.ndarray:
    """Grad-CAM (Selvaraju et al. 2017) on `layer`'s output, by default the last convolutional stage before its
    final pooling (`gradcam_layer`).

    ReLU(Σ_k α_k A_k) with α_k the spatial mean of ∂ score / ∂ A_k. Each cell of the map is drawn at the centre of
    its receptive field in the input (`_cell_centres`) and interpolated bilinearly between cells: for unpadded
    convolutions (LeNet-5's 10×10 map looks at pixels 4.5 … 22.5 of a 28×28 image) stretching the map over the
    whole frame, as plain resizing does, would shift the heat outwards onto the background.

    local: ReLU(Σ_k ∂ score / ∂ A_k ⊙ A_k), the gradient kept at each position instead of averaged — for a score
    that one place makes (a detection's cell, a pixel): the averaged α_k would light every place where channel k
    fires, the other objects of its class included (ODAM, Zhao et al. 2023; HiResCAM, Draelos & Carin 2020). For a
    global-average-pooling head both are the same map.
    """
    pool = gradcam_layer(model, x) if layer is None else None
    x = x.detach().clone().requires_grad_(True)  # x requires grad so the graph exists even for frozen parameters
    a, outputs = _cam_map(model, x, pool, layer)
    where = f"layer '{layer}'" if layer else "the last stage"
    if a.ndim != 4:
        raise ValueError(f"Grad-CAM needs spatial feature maps but {where} gives {tuple(a.shape)}")
    (grad,) = torch.autograd.grad(_as_score(targets)(outputs).sum(), a, allow_unused=True)
    if grad is None or not grad.any():  # zeros: the layer feeds other outputs only (a detector's boxes)
        raise ValueError(
            f"the score explained has no gradient at {where} (the layer does not lead to it, or none of its units "
            "is active); choose a layer on the score's path"
        )
    weights = grad.float() if local else grad.float().mean((2, 3), keepdim=True)  # (B, K, h, w) or α_k (B, K, 1, 1)
    cam = F.relu((weights * a.detach().float()).sum(1, keepdim=True))  # (B, 1, h, w)
    geometry = _cell_centres(model, x, pool, layer)
    return _per_image01(_place(cam, geometry, x.shape[2:]))


def heatmaps(
    model: nn.Module,
    meta,
    x: torch.Tensor,
    score: torch.Tensor | Score,
    method: str,
    layer: str | None = None,
    local: bool = False,
) -> np.ndarray:
    """Heatmaps (B, H, W) on 0–1 of `score` (class indices (B,), or a `Score` of the raw outputs) for inputs x
    (B, C, H, W) by `method` (one of METHODS); `layer` and `local`: Grad-CAM's map and weighting (`gradcam`)."""
    if method not in METHODS:
        raise ValueError(f"unknown saliency method '{method}'; choose one of {', '.join(METHODS)}")
    if layer is not None and method != "gradcam":
        raise ValueError(f"--layer chooses Grad-CAM's feature map; method {method} works on the input")
    with explaining(model):
        x = x.float()
        if method == "gradient":
            return gradient_saliency(model, x, score)
        if method == "smoothgrad":
            return smoothgrad(model, x, score)
        if method == "integrated-gradients":
            return integrated_gradients(model, x, score, from_pixels(torch.zeros_like(x[:1]), meta))
        return gradcam(model, x, score, layer, local)


def saliency(
    model: nn.Module,
    meta: dict,
    x: torch.Tensor,
    targets: torch.Tensor | None = None,
    method: str = "gradient",
    layer: str | None = None,
) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """Heatmaps (B, H, W) on 0–1 for a classifier's inputs x (B, C, H, W); returns (heatmaps, targets, class
    probabilities (B, K)).

    targets: class per image (default: the predicted class). method: one of METHODS. layer: Grad-CAM's map.
    """
    if method not in METHODS:
        raise ValueError(f"unknown saliency method '{method}'; choose one of {', '.join(METHODS)}")
    with explaining(model), torch.no_grad():
        probs = logits_of(model, x.float()).float().softmax(1)
    targets = probs.argmax(1) if targets is None else torch.as_tensor(targets, device=x.device).view(-1)
    return heatmaps(model, meta, x, targets, method, layer), targets, probs


def plot_saliency(
    image: np.ndarray, heats: dict[str, np.ndarray], path: str | Path, title: str = "", alpha: float = 0.5
) -> Path:
    """One row per method: the input, the heatmap (with a colour bar) and the heatmap blended over the input."""
    rows = len(heats)
    fig = figure((8.4, 2.7 * rows + 0.4))
    axes = fig.subplots(rows, 3, squeeze=False)
    gray = image.mean(2) if image.ndim == 3 else image
    for (method, heat), (a_in, a_heat, a_mix) in zip(heats.items(), axes, strict=True):
        show(a_in, image)
        a_in.set_ylabel(method)
        im = show(a_heat, heat, cmap="inferno", vmin=0, vmax=1)
        fig.colorbar(im, ax=a_heat, shrink=0.85, label="saliency (0–1)")
        show(a_mix, image if image.shape[-1] == 3 else gray)
        a_mix.imshow(heat, cmap="inferno", vmin=0, vmax=1, alpha=alpha, interpolation="bilinear")
    axes[0, 0].set_title("input")
    axes[0, 1].set_title("saliency")
    axes[0, 2].set_title("blended over the input")
    if title:
        fig.suptitle(title)
    return save(fig, path)
