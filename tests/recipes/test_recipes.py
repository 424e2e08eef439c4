import pytest
import torch

from cnnlab.cli import build_parser
from cnnlab.cli.train import _train_values
from cnnlab.infer import prepare
from cnnlab.models import create_model
from cnnlab.recipes import list_recipes, read_recipe
from cnnlab.train.config import TrainConfig


def test_fast_recipe_is_a_valid_config():
    assert "fast" in list_recipes()
    cfg = TrainConfig.from_dict(read_recipe("fast")).validate()
    assert cfg.schedule == "onecycle" and cfg.optimizer == "sgd" and cfg.nesterov and cfg.augment == "flip"
    model = create_model(cfg.model)  # the recipe's notation model builds for 28×28×1
    assert list(model.default_cfg["input_size"]) == [1, 28, 28]


def test_course_recipe_is_the_lectures_keras_run():
    cfg = TrainConfig.from_dict(read_recipe("course")).validate()
    assert (cfg.model, cfg.optimizer, cfg.lr, cfg.batch_size, cfg.epochs) == ("lecture_cnn", "adam", 1e-3, 32, 10)
    assert cfg.schedule == "constant" and cfg.augment is None and cfg.label_smoothing == 0


def test_unknown_recipe_lists_the_known_ones():
    with pytest.raises(ValueError, match="choose from best, course, fast"):
        read_recipe("fastest")


def test_config_file_and_flags_override_the_recipe(tmp_path):
    (tmp_path / "c.yaml").write_text("lr: 0.1\nbatch-size: 64\n")
    args = build_parser().parse_args(
        ["train", "--recipe", "fast", "--config", str(tmp_path / "c.yaml"), "--epochs", "7"]
    )
    values = _train_values(args)
    assert values["epochs"] == 7 and values["lr"] == 0.1 and values["batch_size"] == 64
    assert values["schedule"] == "onecycle"  # from the recipe
    # the recipe can also be named inside the config file
    (tmp_path / "d.yaml").write_text("recipe: fast\nepochs: 3\n")
    values = _train_values(build_parser().parse_args(["train", "--config", str(tmp_path / "d.yaml")]))
    assert values["epochs"] == 3 and values["optimizer"] == "sgd" and "recipe" not in values


def test_the_fast_recipe_has_an_fp32_variant(monkeypatch, capsys):
    from cnnlab import runtime

    base, fp32 = read_recipe("fast"), read_recipe("fast", "fp32")
    assert "when_fp32" not in base and fp32["model"] != base["model"]
    changed = {k for k in fp32 if fp32[k] != base.get(k)}
    # only the net differs: the schedule, optimizer, batch, augmentation and label smoothing are the recipe's
    assert changed == {"model"}
    TrainConfig.from_dict(fp32).validate()
    for precision, model in (("fp32", fp32["model"]), ("bf16", base["model"])):
        monkeypatch.setattr(runtime, "resolve_precision", lambda p, d, r=precision: r)
        values = _train_values(build_parser().parse_args(["train", "--recipe", "fast"]))
        assert values["model"] == model
    out = capsys.readouterr().out
    assert f"its fp32 variant (model {fp32['model']})" in out
    # a setting the user gives is theirs, not the variant's
    monkeypatch.setattr(runtime, "resolve_precision", lambda p, d: "fp32")
    values = _train_values(build_parser().parse_args(["train", "--recipe", "fast", "--batch-size", "256"]))
    assert values["batch_size"] == 256 and values["model"] == fp32["model"] and values["lr"] == fp32["lr"]
    # the user's own choice wins over the variant
    values = _train_values(build_parser().parse_args(["train", "--recipe", "fast", "--model", "lenet5"]))
    assert values["model"] == "lenet5"


def test_the_best_recipe_runs_under_its_own_budget_unless_told_otherwise():
    cfg = TrainConfig.from_dict(read_recipe("best")).validate()
    assert cfg.time_budget == "15m" and cfg.epochs is None and cfg.schedule == "onecycle" and cfg.tta
    model = create_model(cfg.model)
    assert list(model.default_cfg["input_size"]) == [1, 28, 28]
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)

    def values(*flags):
        return _train_values(build_parser().parse_args(["train", "--recipe", "best", *flags]))

    assert values()["time_budget"] == "15m" and "epochs" not in values()
    assert values("--time-budget", "1h")["time_budget"] == "1h"
    only_epochs = values("--epochs", "12")  # a fixed number of epochs replaces the recipe's budget
    assert only_epochs["epochs"] == 12 and "time_budget" not in only_epochs
    both = values("--epochs", "12", "--time-budget", "5m")  # both given: whichever ends first
    assert (both["epochs"], both["time_budget"]) == (12, "5m")


def test_the_fp32_variants_net_normalises_after_its_pools_and_deploys_as_it_evaluates():
    """ReLU → 2×2 max → BN in every pooled stage (the norm on a quarter of the values); only the last BN sits
    right after a conv, so folding for inference merges that one and leaves the others, outputs unchanged."""
    model = create_model(read_recipe("fast", "fp32")["model"])
    layers = [type(m).__name__ for m in model.features]
    pools = [i for i, name in enumerate(layers) if name == "MaxPool2d"]
    assert len(pools) == 3 and all(layers[i + 1] == "BatchNorm2d" and layers[i - 1] == "ReLU" for i in pools)
    model.train()
    for _ in range(3):  # running statistics away from their initial 0 / 1
        model(torch.rand(32, 1, 28, 28) * 3)
    model.eval()
    net = prepare(model, torch.device("cpu"), True, True)
    assert [type(m).__name__ for m in net.features].count("BatchNorm2d") == 3
    x = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(net(x.contiguous(memory_format=torch.channels_last)), model(x), rtol=1e-4, atol=1e-5)
