import torch

from cnnlab import infer
from cnnlab.models import create_model


def _images(n=12, c=1, size=28):
    return torch.randint(0, 256, (n, c, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def test_inference_never_changes_its_inputs():
    model = create_model("resnet18", num_classes=10, in_chans=1, small_input=True).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images = _images()
    copy = images.clone()
    logits = infer.predict_logits(model, images, [0.5], [0.25], "cpu", "fp32", batch_size=5, tta=True)
    assert logits.shape == (12, 10) and logits.dtype == torch.float32
    assert model.training  # mode restored
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BN statistics untouched
    assert model.conv1.weight.is_contiguous()  # memory format untouched (channels_last ran on a copy)
    assert torch.equal(images, copy)


def test_folded_unfolded_and_plain_torch_agree():
    torch.manual_seed(0)
    model = create_model("lecture_cnn", num_classes=10, in_chans=1).eval()
    for m in model.modules():  # non-trivial BN statistics so that folding has something to fold
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    images = _images(8)
    x = (images.float() / 255 - 0.5) / 0.25
    with torch.no_grad():
        ref = model(x)
    folded = infer.predict_logits(model, images, [0.5], [0.25], "cpu", "fp32")
    plain = infer.predict_logits(model, images, [0.5], [0.25], "cpu", "fp32", fold_bn=False)
    assert torch.allclose(folded, ref, atol=1e-4) and torch.allclose(plain, ref, atol=1e-4)


def test_tta_is_the_mean_of_image_and_mirror():
    model = create_model("lenet5", num_classes=10, in_chans=1)
    images = _images(6)
    plain = infer.predict_logits(model, images, [0.5], [0.25], "cpu", "fp32")
    mirror = infer.predict_logits(model, images.flip(3), [0.5], [0.25], "cpu", "fp32")
    both = infer.predict_logits(model, images, [0.5], [0.25], "cpu", "fp32", tta=True)
    assert torch.allclose(both, (plain + mirror) / 2, atol=1e-5)


def test_cnn_codes_are_the_penultimate_layer():
    model = create_model("lenet5", num_classes=10, in_chans=1).eval()
    images = _images(4)
    codes = infer.cnn_codes(model, images, [0.5], [0.25])
    x = (images.float() / 255 - 0.5) / 0.25
    with torch.no_grad():
        ref = model.forward_head(model.forward_features(x), pre_logits=True).flatten(1)
    assert codes.shape == ref.shape and torch.allclose(codes, ref, atol=1e-5)


def test_a_long_pass_reports_progress(monkeypatch):
    import itertools

    clock = itertools.count(0.0, 6.0)  # every look at the clock is 6 s later
    monkeypatch.setattr(infer.time, "perf_counter", lambda: next(clock))
    lines = []
    model = create_model("lenet5", num_classes=10, in_chans=1)
    infer.predict_logits(model, _images(12), [0.5], [0.25], "cpu", "fp32", batch_size=3, log=lines.append)
    assert lines and all(line.startswith("inference: ") and "images/s, ETA" in line for line in lines)


def test_a_torch_classifier_runs_its_relus_after_the_pools_with_the_same_logits():
    """evaluate / predict / serve: the prepared copy's forward moves each ReLU before a max pool after it, traced
    once per classifier — the logits of the copy's own forward, bit for bit, in fp32 and bf16, with and without TTA."""
    from cnnlab.io import RunMeta
    from cnnlab.layers.pool_first import PoolFirst

    torch.manual_seed(0)
    model = create_model("CL8k3-MP4-BN-CL16k3-MP4-BN-GAP-FC10", num_classes=10, in_chans=1).eval()
    classes = [f"c{i}" for i in range(10)]
    meta = RunMeta.for_model(model, classes=classes, input_size=[1, 28, 28], mean=[0.5], std=[0.25])
    images = _images(9)
    for precision in ("fp32", "bf16"):
        clf = infer.TorchClassifier(model, meta, "cpu", precision)
        assert isinstance(clf.forward, PoolFirst) and clf.forward.model is clf.net
        assert len(clf.forward._traces) == 1  # traced when made, not on a first request beside other threads
        for tta in (False, True):
            got = clf.logits(images, tta=tta)
            want = infer.predict_logits(clf.net, images, [0.5], [0.25], "cpu", precision, tta=tta, fold_bn=False)
            assert torch.equal(got, want)
        assert len(clf.forward._traces) == 1 and None not in clf.forward._traces.values()  # one trace, used


def test_a_classifier_given_another_net_runs_that_one():
    """serve gives a classifier a copy of the model it explains: predictions must run the copy, never the original."""
    from cnnlab.io import RunMeta

    model = create_model("CL8k3-MP4-CL16k3-MP4-GAP-FC10", num_classes=10, in_chans=1).eval()
    meta = RunMeta.for_model(
        model, classes=[f"c{i}" for i in range(10)], input_size=[1, 28, 28], mean=[0.5], std=[0.25]
    )
    clf = infer.TorchClassifier(model, meta, "cpu", "fp32")
    assert clf.forward.model is clf.net
    clf.net = copy = __import__("copy").deepcopy(model)
    assert clf.forward.model is copy and len(clf.forward._traces) == 1
    calls = []
    model.register_forward_hook(lambda *_: calls.append(1))
    clf.logits(_images(3))
    assert not calls  # the original was not run
