"""The fit check before a fine-tune: scores against a direct computation, the sample, the model left as it was, and
`cnnlab train --init-from` training from scratch where a source does not fit (and from the source with
--init-always)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from cnnlab.data import Normalize
from cnnlab.io import save_model
from cnnlab.models import create_model
from cnnlab.train.fit_check import FitCheck, balanced_sample, check_fit, code_layer, layer_codes, separability
from cnnlab.train.transfer import load_pretrained
from tests.conftest import make_shape_images
from tests.helpers import run_cli


def direct_separability(codes: torch.Tensor, labels: torch.Tensor) -> float:
    """The definition, one image at a time: leave it out, find its nearest neighbour (cosine on centred codes) and
    its nearest class mean; the mean of both hit rates."""
    z = codes - codes.mean(0)
    z = z / z.norm(dim=1, keepdim=True)
    hits_nn = hits_mean = 0
    for i in range(len(z)):
        others = [j for j in range(len(z)) if j != i]
        sims = torch.stack([z[i] @ z[j] for j in others])
        hits_nn += int(labels[others[int(sims.argmax())]] == labels[i])
        dists = []
        for c in range(int(labels.max()) + 1):
            members = [j for j in others if labels[j] == c]
            dists.append(float("inf") if not members else float((z[i] - z[members].mean(0)).square().sum()))
        hits_mean += int(int(np.argmin(dists)) == labels[i])
    return (hits_nn + hits_mean) / (2 * len(z))


def test_separability_is_the_mean_of_two_leave_one_out_hit_rates():
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (40,), generator=gen)
    codes = torch.randn(40, 6, generator=gen) + 1.5 * nn.functional.one_hot(labels, 6).float()
    assert separability(codes, labels) == pytest.approx(direct_separability(codes, labels), abs=1e-6)
    apart = torch.randn(30, 4, generator=gen) * 0.01 + 10 * nn.functional.one_hot(torch.arange(30) % 3, 4).float()
    assert separability(apart, torch.arange(30) % 3) == 1.0
    same = torch.ones(30, 4)  # codes that say nothing: no better than guessing one class
    assert separability(same, torch.arange(30) % 3) <= 0.34


def test_balanced_sample_takes_the_same_number_per_class_and_respects_the_limit():
    labels = torch.tensor([0] * 50 + [1] * 7 + [2] * 300)
    pick = balanced_sample(labels, limit=60, seed=3)
    counts = torch.bincount(labels[pick], minlength=3).tolist()
    assert counts == [20, 7, 20] and len(set(pick.tolist())) == len(pick)  # a small class gives what it has
    assert torch.equal(pick, balanced_sample(labels, limit=60, seed=3))  # seeded
    assert len(balanced_sample(torch.arange(10).repeat(500), limit=1000)) == 1000


def test_layer_codes_leave_the_model_as_they_found_it():
    torch.manual_seed(0)
    model = create_model("CL8k3-BN-MP4-D0.5-CL8k3-BN-GAP-FC32-FC3", num_classes=3, in_chans=1, img_size=16)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images = torch.randint(0, 255, (20, 1, 16, 16), dtype=torch.uint8)
    layer = code_layer(model)
    first = layer_codes(model, layer, images, Normalize([0.5], [0.25]))
    again = layer_codes(model, layer, images, Normalize([0.5], [0.25]))
    assert first.shape == (20, 8) and torch.equal(first, again)  # no dropout, no drift of BN statistics
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_layer_codes_never_pass_a_batch_of_one_image():
    torch.manual_seed(0)  # batch norm after a fully connected layer: one image in training mode is an error
    model = create_model("CL4k3-BN-MP4-FC16-BN-FC32-FC3", num_classes=3, in_chans=1, img_size=8)
    images = torch.randint(0, 255, (257, 1, 8, 8), dtype=torch.uint8)  # one more than a batch
    codes = layer_codes(model, code_layer(model, new_fc=False), images, Normalize([0.5], [0.25]))
    assert codes.shape == (257, 32)


def _shapes(n: int, seed: int):
    x, y = make_shape_images(n, seed=seed)
    return torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y).long()


def test_a_source_that_fits_is_loaded_and_one_that_does_not_leaves_the_fresh_weights():
    images, labels = _shapes(120, seed=0)
    norm = Normalize([images.float().mean().item() / 255], [images.float().std().item() / 255])
    torch.manual_seed(1)
    trained = create_model("lenet5", num_classes=4, in_chans=1, img_size=28)
    opt = torch.optim.Adam(trained.parameters(), 3e-3)
    for _ in range(60):  # the source learnt this very task: its features separate the shapes
        opt.zero_grad()
        nn.functional.cross_entropy(trained(norm(images)), labels).backward()
        opt.step()
    blank = {k: torch.zeros_like(v) for k, v in trained.state_dict().items()}  # features that say nothing

    for source, fits in ((trained.state_dict(), True), (blank, False)):
        torch.manual_seed(2)
        model = create_model("lenet5", num_classes=4, in_chans=1, img_size=28)
        fresh = {k: v.clone() for k, v in model.state_dict().items()}
        check, report = check_fit(model, lambda m=model, s=source: load_pretrained(m, s), images, labels, norm)
        assert isinstance(check, FitCheck) and check.fits is fits and check.images == 120, check
        assert report.loaded  # the source was read either way: the report tells what it held
        conv = model.state_dict()["features.0.weight"]
        assert torch.equal(conv, source["features.0.weight"] if fits else fresh["features.0.weight"])
    assert check.source < 0.3 < 0.4 < check.fresh  # the blank source at chance (4 classes), the fresh net above it
    assert "does not fit, training from scratch (--init-always keeps it)" in check.line()


def test_train_from_a_source_that_does_not_fit_trains_from_scratch_and_says_so(shapes_npz, tmp_path):
    blank = create_model("lenet5", num_classes=10, in_chans=1, img_size=28)
    for p in blank.parameters():
        nn.init.zeros_(p)
    save_model(tmp_path / "blank.safetensors", blank, classes=[str(i) for i in range(10)], dataset="nothing")
    args = ["--data", f"npz:{shapes_npz}", "--init-from", tmp_path / "blank.safetensors", "--epochs", "1"]
    args += ["--val-split", "0", "--precision", "fp32", "--verbose", "0", "--batch-size", "32"]
    log = run_cli("train", *args, "--out", tmp_path / "scratch").stdout
    assert "the source does not fit, training from scratch (--init-always keeps it)" in log
    assert "frozen for 1 epoch(s)" not in log
    info = json.loads((tmp_path / "scratch" / "metrics.json").read_text())["init_from"]
    assert info["transferred"] is False and info["fit_check"]["fits"] is False
    assert info["fit_check"]["images"] == 200 and info["fit_check"]["source"] < info["fit_check"]["fresh"]

    log = run_cli("train", *args, "--init-always", "--out", tmp_path / "always").stdout
    assert "fit check" not in log and "frozen for 1 epoch(s)" in log
    info = json.loads((tmp_path / "always" / "metrics.json").read_text())["init_from"]
    assert info["transferred"] is True and "fit_check" not in info
