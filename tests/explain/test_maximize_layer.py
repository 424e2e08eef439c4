"""DeepDream's whole-layer objective in activation maximization: `maximize(..., objective="layer")` raises the mean
square of a layer's whole output, from noise or from an image; `cnnlab explain RUN maximize --objective layer`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.cli import main
from cnnlab.explain import maximize, to_input
from cnnlab.explain._common import capture


def _energy(model, x, layer):
    with torch.no_grad():
        return capture(model.eval(), layer, x).pow(2).flatten(1).mean(1)


def test_layer_objective_raises_the_layers_mean_square(toy_lenet):
    model, meta, test = toy_lenet
    result = maximize(model, meta, [], "features.4", steps=24, objective="layer")
    assert result.labels == ["features.4: mean a²"] and result.images.shape == (1, 28, 28, 1)
    assert result.end[0] > 2 * result.start[0] > 0
    # the number reported is the objective itself, recomputed from the returned image
    x = to_input(torch.from_numpy(np.rint(result.images * 255).astype(np.uint8)).permute(0, 3, 1, 2), meta)
    assert float(_energy(model, x, "features.4")[0]) == pytest.approx(result.end[0], rel=0.05)


def test_layer_objective_from_an_image(toy_lenet):
    model, meta, test = toy_lenet
    start = to_input(test.images[:2], meta)
    result = maximize(model, meta, [], "features.4", steps=16, objective="layer", start=start, blur_every=0)
    assert len(result.labels) == 2
    np.testing.assert_allclose(result.start, _energy(model, start, "features.4").numpy(), rtol=1e-5)
    assert np.all(result.end > result.start)


def test_objective_errors(toy_lenet):
    model, meta, test = toy_lenet
    with pytest.raises(ValueError, match="unknown objective 'dream'"):
        maximize(model, meta, [0], "features.4", steps=1, objective="dream")
    with pytest.raises(ValueError, match="needs a layer"):
        maximize(model, meta, [0], None, steps=1, objective="layer")
    with pytest.raises(ValueError, match="one per target"):
        maximize(model, meta, [0, 1], "features.4", steps=1, start=to_input(test.images[:1], meta))


def test_cli_layer_objective(toy_run, tmp_path, capsys):
    image = tmp_path / "img.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (28, 28), dtype=np.uint8)).save(image)
    args = ["explain", str(toy_run), "maximize", "--layer", "features.4", "--objective", "layer", "--steps", "4"]
    assert main([*args, "--image", str(image), "--out", str(tmp_path / "d.png")]) == 0
    out = capsys.readouterr().out
    assert "features.4: mean a²: activation" in out and (tmp_path / "d.png").exists()
    assert main([*args, "--channel", "3"]) == 2
    assert "without --channel" in capsys.readouterr().err
