"""Convolution over several channels: M kernels of depth N. Output channel m is Σₙ (input channel n ⋆ kernel slice
w[m, n]) + b[m]: one 2-D cross-correlation per input channel, summed over channels, plus the kernel's bias.

The set-up is that of the Stanford CS231n notes' convolution demo (a public example: a 5×5×3 input zero-padded to
7×7×3, two 3×3×3 kernels, stride 2 → a 3×3×2 output); the demo draws new random numbers on every load, so these
numbers are ours (small integers from a fixed seed, easy to check by hand)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from cnnlab.explain.plotting import figure
from cnnlab.lab._common import Report, save_figure
from cnnlab.lab._tables import draw_numbers, say_table, side_by_side, table, terms

N_IN, M_OUT, SIDE, K, STRIDE, PAD = 3, 2, 5, 3, 2, 1


def example(seed: int = 3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input N×5×5 in {0, 1, 2}, weights M×N×3×3 in {−1, 0, 1}, biases (1, 0)), float64."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 3, (N_IN, SIDE, SIDE), generator=g).double()
    w = torch.randint(-1, 2, (M_OUT, N_IN, K, K), generator=g).double()
    return x, w, torch.tensor([1.0, 0.0], dtype=torch.float64)


def per_channel(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """(M, N, H', W'): input channel n cross-correlated with kernel slice w[m, n] alone (stride and padding as the
    layer's)."""
    return torch.stack(
        [
            torch.stack(
                [
                    F.conv2d(x[n][None, None], w[m, n][None, None], stride=STRIDE, padding=PAD)[0, 0]
                    for n in range(x.shape[0])
                ]
            )
            for m in range(w.shape[0])
        ]
    )


def run(quick: bool = True, out: Path | str = ".", echo=print) -> dict:
    say = Report(echo)
    x, w, b = example()
    say(
        f"input {N_IN}×{SIDE}×{SIDE} (channels × rows × columns), zero padding {PAD}; {M_OUT} kernels of depth "
        f"{N_IN}, each {N_IN}×{K}×{K}, stride {STRIDE}. The set-up of the CS231n notes' demo; the numbers are ours."
    )
    for line in side_by_side([(f"input channel {n}", table(x[n])) for n in range(N_IN)]):
        say(line)
    side = (SIDE + 2 * PAD - K) // STRIDE + 1
    parts = per_channel(x, w)
    layer = F.conv2d(x[None], w, b, stride=STRIDE, padding=PAD)[0]
    for m in range(M_OUT):
        say(f"kernel {m} ({N_IN} slices, bias {b[m]:g}):")
        for line in side_by_side([(f"w[{m}, {n}]", table(w[m, n])) for n in range(N_IN)]):
            say(line)
        blocks = [(f"x{n} ⋆ w[{m}, {n}]", table(parts[m, n])) for n in range(N_IN)]
        blocks.append((f"Σ + b{m} = output {m}", table(parts[m].sum(0) + b[m])))
        for line in side_by_side(blocks):
            say(line)
        say(
            f"  output {m} at (0, 0) = {terms([*parts[m, :, 0, 0].tolist(), b[m]])} (the last: bias) = {layer[m, 0, 0]:g}"
        )
    summed = parts.sum(1) + b.view(-1, 1, 1)
    say(
        f"Σ over channels + bias == F.conv2d with the {M_OUT}×{N_IN}×{K}×{K} weight: {bool(torch.equal(summed, layer))}"
    )
    params = M_OUT * N_IN * K * K + M_OUT
    say(
        f"output {M_OUT}×{side}×{side}: one map per kernel, ⌊({SIDE} + 2·{PAD} − {K})/{STRIDE}⌋ + 1 = {side}; "
        f"parameters M·N·k·k + M = {M_OUT}·{N_IN}·{K}·{K} + {M_OUT} = {params}"
    )
    conv = torch.nn.Conv2d(N_IN, M_OUT, K, STRIDE, PAD)
    say(
        f"nn.Conv2d({N_IN}, {M_OUT}, {K}, stride={STRIDE}, padding={PAD}) has weight {tuple(conv.weight.shape)} and "
        f"{sum(p.numel() for p in conv.parameters())} parameters"
    )
    say_table(say, "output 0 (from F.conv2d):", layer[0])
    path = _plot(x, w, b, parts, layer, out)
    say(f"figure: {path}")
    return {
        "partial": parts.tolist(),
        "output": layer.tolist(),
        "summed": summed.tolist(),
        "params": params,
        "torch_params": sum(p.numel() for p in conv.parameters()),
        "figure": str(path),
    }


def _plot(x, w, b, parts, layer, out) -> Path:
    fig = figure((15, 7.6))
    grid = fig.add_gridspec(1 + M_OUT, 2 * N_IN + 1, height_ratios=[1.3] + [1] * M_OUT)
    padded = F.pad(x, (PAD,) * 4)
    for n in range(N_IN):
        draw_numbers(
            fig.add_subplot(grid[0, 2 * n : 2 * n + 2]),
            padded[n],
            f"input channel {n}, padded",
            cmap="Blues",
            box=(0, 0, K, K),
        )
    for m in range(M_OUT):
        for n in range(N_IN):
            draw_numbers(fig.add_subplot(grid[1 + m, 2 * n]), w[m, n], f"w[{m}, {n}]", lim=2)
            draw_numbers(fig.add_subplot(grid[1 + m, 2 * n + 1]), parts[m, n], f"x{n} ⋆ w[{m}, {n}]")
        draw_numbers(fig.add_subplot(grid[1 + m, -1]), layer[m], f"Σₙ + b{m} ({b[m]:g}) = output {m}", box=(0, 0, 1, 1))
    fig.suptitle(
        f"{M_OUT} kernels of depth {N_IN}: each output map is the sum over the {N_IN} input channels of their own "
        "2-D cross-correlations, plus a bias"
    )
    return save_figure(fig, out, "channels")
