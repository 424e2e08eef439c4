"""`--init-from`'s defaults on a tiny task pair: fine-tuning with them does not lose to training from scratch (the
measured table over real pairs is benchmarks/features/finetune_defaults.py's, in BENCHMARKS.md)."""

from __future__ import annotations

import pytest
import torch

from cnnlab.data import ImageSet, InMemoryLoader, Normalize, channel_stats
from cnnlab.infer import TorchClassifier
from cnnlab.io import RunMeta
from cnnlab.lab._common import toy_set
from cnnlab.models import create_model
from cnnlab.train import Trainer, build_optimizer
from cnnlab.train.callbacks import FreezeSchedule
from cnnlab.train.config import TrainConfig
from cnnlab.train.transfer import load_pretrained, param_groups

MODEL = "CL8k3-BN-MP4-CL16k3-BN-MP4-FC32-FC10"  # a fully connected layer below the classifier, as LeNet-5's


def classes(data: ImageSet, keep: tuple[int, int]) -> ImageSet:
    mask = (data.labels == keep[0]) | (data.labels == keep[1])
    return ImageSet(data.images[mask], (data.labels[mask] == keep[1]).long(), [str(k) for k in keep])


def train(data: ImageSet, epochs: int, seed: int, source=None, freeze: int = 0, mult: float = 1.0, new_fc=True):
    torch.manual_seed(seed)
    model = create_model(MODEL, num_classes=2, in_chans=1, img_size=16)
    params, callbacks = model, []
    if source is not None:  # as `cnnlab train --init-from` applies its defaults (run/setup.py)
        head = load_pretrained(model, source, new_fc=new_fc).head_names(model)
        params = param_groups(model, 1e-3, backbone_lr_mult=mult, head=head)
        callbacks = [FreezeSchedule("features", freeze, head=head)] if freeze else []
    mean, std = channel_stats(data.images)
    loader = InMemoryLoader(data, 16, shuffle=True, seed=seed, transform=Normalize(mean, std))
    optimizer = build_optimizer("adam", params, 1e-3)
    trainer = Trainer(model, optimizer, device="cpu", precision="fp32", callbacks=callbacks, threads=1)
    trainer.fit(loader, epochs)
    return model, RunMeta.for_model(model, classes=data.classes, input_size=[1, 16, 16], mean=mean, std=std)


@pytest.mark.slow
def test_the_defaults_do_not_lose_to_scratch_on_a_tiny_pair(tmp_path):
    from cnnlab.io import save_model

    pool, test = toy_set(1200, seed=0), toy_set(800, seed=1)
    source, meta = train(classes(pool, (0, 1)), 4, seed=0)  # A: square vs ring
    save_model(tmp_path / "a.safetensors", source, meta)
    cfg = TrainConfig()
    target, target_test = classes(pool, (2, 3)), classes(test, (2, 3))  # B: plus vs cross, 10 images each
    few = target.subset(torch.cat([(target.labels == k).nonzero().flatten()[:10] for k in (0, 1)]))

    def accuracy(**kw) -> float:
        model, meta = train(few, 15, seed=1, **kw)
        predicted = TorchClassifier(model, meta, "cpu", "fp32").logits(target_test.images).argmax(1)
        return float((predicted == target_test.labels).float().mean())

    scratch = accuracy()
    defaults = dict(freeze=cfg.freeze_epochs, mult=cfg.backbone_lr_mult, new_fc=not cfg.keep_fc)
    default = accuracy(source=tmp_path / "a.safetensors", **defaults)
    assert defaults == dict(freeze=1, mult=1.0, new_fc=True)  # the measured defaults
    assert scratch > 0.6 and default >= scratch - 0.05, (default, scratch)  # both learnt; no loss beyond noise
