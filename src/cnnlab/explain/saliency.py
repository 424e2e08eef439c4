"""Which pixels the class score depends on: gradient saliency, SmoothGrad, integrated gradients and Grad-CAM.

All four take a batch of model inputs (B, C, H, W) and return heatmaps (B, H, W) scaled to 0–1 per image. Gradients
are taken with torch.autograd.grad with respect to the input (or the feature maps) only, so they work for models in
eval mode whose parameters are frozen and do not touch any parameter's .grad; inputs are cloned before the forward
pass, so in-place ReLUs never write into a tensor that autograd needs.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.explain._common import explaining, from_pixels, logits_of
from cnnlab.explain.plotting import save, show

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
    order: list[str] = []
    leaves = [(n, m) for n, m in model.named_modules() if n and not list(m.children())]
    hooks = [m.register_forward_hook(lambda mod, i, o, n=n: order.append(n)) for n, m in leaves]
    try:
        with torch.no_grad():
            model.forward_features(x[:1])
    finally:
        for h in hooks:
            h.remove()
    modules = dict(leaves)
    first_pool = None
    for name in reversed(order):
        if not isinstance(modules[name], _POOLS):
            break
        first_pool = name
    return first_pool


def gradcam(model: nn.Module, x: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
    """Grad-CAM (Selvaraju et al. 2017) on the last convolutional stage, before its final pooling (`gradcam_layer`).

    ReLU(Σ_k α_k A_k) with α_k the spatial mean of ∂ score / ∂ A_k, upsampled bilinearly to the input size.
    """
    pool = gradcam_layer(model, x)
    maps: list[torch.Tensor] = []
    if pool is None:  # the map is forward_features' output: differentiate the head alone
        with torch.no_grad():
            feats = model.forward_features(x)
        a = feats.detach().float().requires_grad_(True)  # (B, K, h, w)
        maps.append(a)
        logits = model.forward_head(a.clone())  # the clone: a head starting with an in-place ReLU must not hit the leaf
    else:  # the map is the input of the final pooling: catch it on the way through the whole model
        handle = model.get_submodule(pool).register_forward_pre_hook(
            lambda m, inp: maps.append(inp[0]) if not maps else None
        )
        try:
            # x requires grad so that the graph exists even when every parameter is frozen
            logits = logits_of(model, x.detach().clone().requires_grad_(True))
        finally:
            handle.remove()
        a = maps[0]
    if a.ndim != 4:
        raise ValueError(f"Grad-CAM needs spatial feature maps but the last stage gives {tuple(a.shape)}")
    (grad,) = torch.autograd.grad(logits.gather(1, targets[:, None]).sum(), a)
    weights = grad.mean((2, 3), keepdim=True)  # α_k: (B, K, 1, 1)
    cam = F.relu((weights * a.detach()).sum(1, keepdim=True))  # (B, 1, h, w)
    cam = F.interpolate(cam, size=x.shape[2:], mode="bilinear", align_corners=False)[:, 0]
    return _per_image01(cam)


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
    fig, axes = plt.subplots(rows, 3, figsize=(8.4, 2.7 * rows + 0.4), squeeze=False, layout="constrained")
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
