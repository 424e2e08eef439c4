"""Transfer learning in Python: load_pretrained (report, channels, head), freeze / unfreeze, param groups, resume."""

import pickle

import pytest
import torch

import cnnlab
from cnnlab.data import ImageSet, InMemoryLoader, Normalize
from cnnlab.models import create_model
from cnnlab.tasks import get_task
from cnnlab.train import Trainer, build_optimizer
from cnnlab.train.callbacks import FreezeSchedule
from cnnlab.train.transfer import blocks, fc_layers, freeze, frozen_names, load_pretrained, param_groups, read_source


def small_resnet(classes=3, chans=1, **kw):
    return create_model("resnet18", num_classes=classes, in_chans=chans, img_size=8, small_input=True, **kw)


def toy_data(n=64, chans=1, size=8, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, chans, size, size), dtype=torch.uint8, generator=g)
    return ImageSet(images, torch.randint(0, classes, (n,), generator=g), [str(k) for k in range(classes)])


def loader(data, seed=1):
    return InMemoryLoader(data, 16, shuffle=True, transform=Normalize([0.5], [0.25]), seed=seed)


def test_public_names():
    assert cnnlab.load_pretrained is load_pretrained
    assert callable(cnnlab.freeze) and callable(cnnlab.unfreeze)


def test_head_only_training_leaves_every_backbone_tensor_bit_identical():
    torch.manual_seed(0)
    model = small_resnet()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = build_optimizer("adamw", param_groups(model, 1e-2, weight_decay=0.1), 1e-2, weight_decay=0.1)
    trainer = Trainer(model, optimizer, device="cpu", precision="fp32", callbacks=[FreezeSchedule("features", 5)])
    trainer.fit(loader(toy_data()), 2)
    after = model.state_dict()
    head = {"fc.weight", "fc.bias"}
    changed = [k for k in before if k not in head and not torch.equal(before[k], after[k])]
    assert changed == []  # weights, BN running_mean / running_var and num_batches_tracked
    assert not torch.equal(before["fc.weight"], after["fc.weight"])
    # frozen parameters got no optimizer state (and so no weight decay)
    with_state = {id(p) for p in optimizer.state}
    assert with_state == {id(model.fc.weight), id(model.fc.bias)}
    assert all(p.requires_grad for p in model.parameters())  # the schedule leaves the model trainable at the end


@pytest.mark.slow
def test_freeze_schedule_unfreezes_and_the_backbone_trains_at_the_lower_lr():
    torch.manual_seed(0)
    model = small_resnet()
    conv = model.conv1.weight.detach().clone()
    groups = param_groups(model, 1e-2, backbone_lr_mult=0.1)
    assert [g["name"] for g in groups] == ["head", "head.no_decay", "backbone", "backbone.no_decay"]
    assert [g["lr"] for g in groups] == pytest.approx([1e-2, 1e-2, 1e-3, 1e-3])
    trainer = Trainer(
        model,
        build_optimizer("adam", groups, 1e-2),
        device="cpu",
        precision="fp32",
        callbacks=[FreezeSchedule("features", 1)],
    )
    trainer.fit(loader(toy_data()), 2)
    assert not torch.equal(conv, model.conv1.weight)
    assert model.bn1.training and not model.bn1._forward_pre_hooks  # BN follows the model's mode again


def test_freeze_specs_and_bn_stays_in_eval():
    model = small_resnet()
    assert blocks(model)[:4] == ["conv1", "bn1", "layer1.0", "layer1.1"] and blocks(model)[-1] == "fc"
    assert set(frozen_names(model, "2")) == {"conv1.weight", "bn1.weight", "bn1.bias"}
    assert all(n.startswith(("conv1", "layer1.")) for n in frozen_names(model, "conv1,layer1"))
    assert frozen_names(model, "none") == []
    with pytest.raises(ValueError, match="no parameters under 'layer9'"):
        frozen_names(model, "layer9")
    with pytest.raises(ValueError, match="classifier"):
        frozen_names(model, str(len(blocks(model))))
    cnnlab.freeze(model, "conv1,bn1")
    model.train()
    mean = model.bn1.running_mean.clone()
    model(torch.randn(4, 1, 8, 8))
    assert torch.equal(mean, model.bn1.running_mean) and model.layer1[0].bn1.training
    cnnlab.unfreeze(model)
    model(torch.randn(4, 1, 8, 8))
    assert not torch.equal(mean, model.bn1.running_mean)


def test_channel_adaptation_matches_the_summed_channel_reference_on_a_gray_image():
    torch.manual_seed(0)
    rgb = small_resnet(chans=3).eval()
    with torch.no_grad():  # BN statistics that are not the identity, so the whole path is checked
        for m in rgb.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    gray = small_resnet(chans=1).eval()
    report = load_pretrained(gray, rgb.state_dict(), keep_head=True)
    assert not report.mismatches and report.head == "kept"
    assert report.notes == ["input channels 3 → 1: conv1.weight summed its 3 channels into 1"]
    assert torch.equal(gray.conv1.weight, rgb.conv1.weight.sum(1, keepdim=True))
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(gray(x), rgb(x.repeat(1, 3, 1, 1)), rtol=1e-4, atol=1e-5)
        # and back: 1 → 3 channels repeats and rescales, so the RGB copy of a gray image gives the gray output
        rgb2 = small_resnet(chans=3).eval()
        report = load_pretrained(rgb2, gray.state_dict(), keep_head=True)
        assert "repeated its 1 channel(s) to 3" in report.notes[0]
        torch.testing.assert_close(rgb2(x.repeat(1, 3, 1, 1)), gray(x), rtol=1e-4, atol=1e-5)


def test_new_fc_transfers_the_body_and_trains_the_fully_connected_top_as_head():
    assert fc_layers(create_model("lenet5", num_classes=3, in_chans=1)) == ["classifier.0", "classifier.2"]
    assert fc_layers(create_model("CL8k3-BN-MP4-FC32-BN-FC10", in_chans=1)) == ["classifier.0", "classifier.1"]
    assert fc_layers(small_resnet()) == [] and fc_layers(create_model("CL8k3-MP4-FC10", in_chans=1)) == []
    backbone = create_model("CL8k3-BN-MP4-CL16k3-BN-MP4-FC10", in_chans=1, img_size=32)
    localizer = get_task("localize")(["a", "b"], (1, 32, 32)).build(backbone)
    assert fc_layers(localizer) == []  # its box regressor (after the class output) is transferred, not renewed
    torch.manual_seed(0)
    source = create_model("lenet5", num_classes=10, in_chans=1).state_dict()
    model = create_model("lenet5", num_classes=3, in_chans=1)
    init = {k: v.clone() for k, v in model.state_dict().items()}
    report = load_pretrained(model, source, new_fc=True)
    assert report.new_layers == ["classifier.0", "classifier.2"] and not report.mismatches
    assert sorted(report.loaded) == [f"features.{i}.{p}" for i in (0, 3) for p in ("bias", "weight")]
    state = model.state_dict()
    assert all(torch.equal(state[k], init[k]) for k in state if k.startswith("classifier."))
    assert torch.equal(state["features.3.weight"], source["features.3.weight"])
    assert "fully connected layers classifier.0, classifier.2: new (only the body is transferred)" in report.notes
    head = report.head_names(model)
    assert sorted(head) == [f"classifier.{i}.{p}" for i in (0, 2, 4) for p in ("bias", "weight")]
    assert sorted(freeze(model, "features", head)) == [f"features.{i}.{p}" for i in (0, 3) for p in ("bias", "weight")]
    groups = param_groups(model, 1e-2, backbone_lr_mult=0.1, head=head)
    assert sum(p.numel() for g in groups if g["name"].startswith("head") for p in g["params"]) == sum(
        p.numel() for n, p in model.named_parameters() if n in head
    )
    # the same classes: a continued run keeps everything, the fully connected layers too
    same = create_model("lenet5", num_classes=10, in_chans=1)
    assert load_pretrained(same, source, keep_head=True, new_fc=True).new_layers == []


def test_mismatch_report_on_a_deliberately_wrong_file(tmp_path):
    source = small_resnet(classes=5).state_dict()
    source.pop("layer4.1.bn2.running_var")
    source["layer9.weight"] = torch.zeros(3)
    source["layer4.1.conv2.weight"] = torch.zeros(512, 512, 1, 1)
    path = tmp_path / "wrong.pth"
    torch.save(source, path)
    model = small_resnet(classes=3)
    fc = model.fc.weight.clone()
    report = load_pretrained(model, path)
    assert report.missing == ["layer4.1.bn2.running_var"]
    assert report.unexpected == ["layer9.weight"]
    assert report.wrong_shape == [("layer4.1.conv2.weight", (512, 512, 1, 1), (512, 512, 3, 3))]
    assert report.head == "new" and torch.equal(model.fc.weight, fc)
    assert "classifier fc: new, 3 classes (the source's had 5 outputs)" in report.notes
    text = "\n".join(report.lines())
    assert (
        "wrong shape (1, left as initialized): layer4.1.conv2.weight [512, 512, 1, 1] (source) vs [512, 512, 3, 3]"
        in text
    )
    with pytest.raises(ValueError, match="do not match exactly.*missing.*unexpected.*wrong shape"):
        load_pretrained(small_resnet(classes=3), path, strict=True)


def test_torchvision_layout_state_dict_loads(tmp_path):
    # what torchvision's resnet18 weight file holds: 1000 classes, RGB, the ImageNet stem; saved as a plain .pth
    torch.manual_seed(0)
    tv = create_model("resnet18", num_classes=1000, in_chans=3, img_size=32)
    torch.save(tv.state_dict(), tmp_path / "resnet18-f37072fd.pth")
    torch.save({"state_dict": {f"module.{k}": v for k, v in tv.state_dict().items()}}, tmp_path / "wrapped.pt")
    for name in ("resnet18-f37072fd.pth", "wrapped.pt"):
        model = create_model("resnet18", num_classes=10, in_chans=1, img_size=32)
        report = load_pretrained(model, tmp_path / name)
        assert not report.mismatches, report.lines()
        assert report.head == "new" and len(report.loaded) == len(model.state_dict()) - 2
        assert torch.equal(model.layer3[1].conv2.weight, tv.layer3[1].conv2.weight)
        assert torch.equal(model.conv1.weight, tv.conv1.weight.sum(1, keepdim=True))


class Evil:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))  # would create the marker file if it were ever unpickled with code


def test_a_pickle_that_needs_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(1), "x": Evil(marker)}, path)
    assert not marker.exists()
    with pytest.raises(ValueError, match="refused: the file needs code to load"):
        read_source(path)
    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump(Evil(marker), f)
    with pytest.raises(ValueError, match="refused"):
        read_source(tmp_path / "evil.pt")
    assert not marker.exists()


def test_bad_sources_say_one_thing_each(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such run folder, model file or weight file"):
        read_source(tmp_path / "nope.pth")
    torch.save([torch.zeros(2)], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="not a state dict"):
        read_source(tmp_path / "list.pth")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(ValueError, match="not a PyTorch weight file"):
        read_source(tmp_path / "text.pt")
    torch.save(create_model("lenet5").state_dict(), tmp_path / "lenet.pth")
    with pytest.raises(ValueError, match="do not fit resnet18: only 0 of"):
        load_pretrained(small_resnet(), tmp_path / "lenet.pth")


def run_frozen(epochs_then, state=None):
    torch.manual_seed(0)
    model = small_resnet()
    trainer = Trainer(
        model,
        build_optimizer("adam", param_groups(model, 1e-2, backbone_lr_mult=0.1), 1e-2),
        device="cpu",
        precision="fp32",
        callbacks=[FreezeSchedule("features", 2)],
    )
    if state is not None:
        trainer.load_state_dict(state)
    trainer.fit(loader(toy_data(32)), epochs_then)
    return trainer


@pytest.mark.slow
def test_resume_through_the_unfreeze_gives_the_same_weights():
    whole = run_frozen(3).model.state_dict()
    state = run_frozen(1).state_dict()  # stopped while frozen
    resumed = run_frozen(3, state).model.state_dict()
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
