"""Which pixels the class score depends on: gradient saliency, SmoothGrad, integrated gradients and Grad-CAM.

All four take a batch of model inputs (B, C, H, W) and return heatmaps (B, H, W) scaled to 0–1 per image. Gradients
are taken with torch.autograd.grad with respect to the input (or the feature maps) only, so they work for models in
eval mode whose parameters are frozen and do not touch any parameter's .grad; inputs are cloned before the forward
pass, so in-place ReLUs never write into a tensor that autograd needs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.explain._common import explaining, from_pixels, logits_of, map_field
from cnnlab.explain.plotting import figure, save, show
from cnnlab.models.hooks import record

METHODS = ("gradient", "smoothgrad", "integrated-gradients", "gradcam")


def _score_grad(model: nn.Module, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """∂ logit[target] / ∂ x for every image of the batch, (B, C, H, W)."""
    x = x.detach().requires_grad_(True)
    logits = logits_of(model, x.clone())  # the clone: an in-place first layer must not write into the leaf
    score = logits.gather(1, targets[:, None]).sum()  # images are independent in eval mode: one backward for all
    (grad,) = torch.autograd.grad(score, x)
    return grad


def _per_image01(heat: torch.Tensor) -> np.ndarray:
    """(B, H, W) → each image min–max scaled to 0–1 (as the course shows saliency maps)."""
    flat = heat.flatten(1)
    lo, hi = flat.min(1).values[:, None, None], flat.max(1).values[:, None, None]
    return ((heat - lo) / (hi - lo).clamp_min(1e-12)).cpu().numpy()


def gradient_saliency(model: nn.Module, x: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
    """max over channels of |∂ score / ∂ x| (Simonyan et al. 2014)."""
    return _per_image01(_score_grad(model, x, targets).abs().amax(1))


def smoothgrad(
    model: nn.Module, x: torch.Tensor, targets: torch.Tensor, samples: int = 25, noise: float = 0.15, seed: int = 0
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
    model: nn.Module, x: torch.Tensor, targets: torch.Tensor, baseline: torch.Tensor, steps: int = 32
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


def _cam_map(model: nn.Module, x: torch.Tensor, pool: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(feature map A, logits) for inputs x, both in x's graph: A is the input of `pool`, or forward_features' output."""
    if pool is None:
        a = model.forward_features(x)
        return a, model.forward_head(a.clone())  # the clone: a head starting with an in-place ReLU must not hit A
    with record(model, [pool]) as rec:
        logits = logits_of(model, x.clone())  # the clone: an in-place first layer must not write into the leaf
    return rec.input(pool), logits


def _cell_centres(model: nn.Module, x: torch.Tensor, pool: str | None) -> list[tuple[float, float] | None]:
    """Per spatial axis, (offset, stride) such that cell i of Grad-CAM's map A (`_cam_map`) looks at input pixels
    centred on offset + stride·i.

    From the receptive field of A's cells (`map_field`: the kernel/stride/padding recurrence of `cnnlab summary`):
    offset is the centre of cell 0's field, stride its jump. None for an axis of one cell, where the field is unknown,
    or where the fields of the cells a quarter from either end reach the image border (padded "same" convolutions,
    ResNet's huge fields): there the map covers the whole frame and plain resizing is already right.
    """
    field, shape = map_field(model, x.shape[1:], lambda z: _cam_map(model, z, pool)[0])
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


def gradcam(model: nn.Module, x: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
    """Grad-CAM (Selvaraju et al. 2017) on the last convolutional stage, before its final pooling (`gradcam_layer`).

    ReLU(Σ_k α_k A_k) with α_k the spatial mean of ∂ score / ∂ A_k. Each cell of the map is drawn at the centre of
    its receptive field in the input (`_cell_centres`) and interpolated bilinearly between cells: for unpadded
    convolutions (LeNet-5's 10×10 map looks at pixels 4.5 … 22.5 of a 28×28 image) stretching the map over the
    whole frame, as plain resizing does, would shift the heat outwards onto the background.
    """
    pool = gradcam_layer(model, x)
    x = x.detach().clone().requires_grad_(True)  # x requires grad so the graph exists even for frozen parameters
    a, logits = _cam_map(model, x, pool)
    if a.ndim != 4:
        raise ValueError(f"Grad-CAM needs spatial feature maps but the last stage gives {tuple(a.shape)}")
    (grad,) = torch.autograd.grad(logits.gather(1, targets[:, None]).sum(), a)
    weights = grad.float().mean((2, 3), keepdim=True)  # α_k: (B, K, 1, 1)
    cam = F.relu((weights * a.detach().float()).sum(1, keepdim=True))  # (B, 1, h, w)
    geometry = _cell_centres(model, x, pool)
    return _per_image01(_place(cam, geometry, x.shape[2:]))


def saliency(
    model: nn.Module, meta: dict, x: torch.Tensor, targets: torch.Tensor | None = None, method: str = "gradient"
) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """Heatmaps (B, H, W) on 0–1 for inputs x (B, C, H, W); returns (heatmaps, targets, class probabilities (B, K)).

    targets: class per image (default: the predicted class). method: one of METHODS.
    """
    if method not in METHODS:
        raise ValueError(f"unknown saliency method '{method}'; choose one of {', '.join(METHODS)}")
    with explaining(model):
        x = x.float()
        with torch.no_grad():
            probs = logits_of(model, x).float().softmax(1)
        targets = probs.argmax(1) if targets is None else torch.as_tensor(targets, device=x.device).view(-1)
        if method == "gradient":
            heat = gradient_saliency(model, x, targets)
        elif method == "smoothgrad":
            heat = smoothgrad(model, x, targets)
        elif method == "integrated-gradients":
            black = from_pixels(torch.zeros_like(x[:1]), meta)
            heat = integrated_gradients(model, x, targets, black)
        else:
            heat = gradcam(model, x, targets)
    return heat, targets, probs


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
