"""Write torchvision_keys.json: the state-dict keys and shapes that torchvision's models save (1000 classes, RGB).

The reference for tests/models/test_torchvision_layout.py, kept independent of cnnlab's model code.

    python tests/models/make_torchvision_keys.py                    # derive from the source rules below
    python tests/models/make_torchvision_keys.py --from-torchvision # dump from an installed torchvision (check)

Without torchvision (it cannot be installed on the CPU machines), the lists are derived by replaying, statement by
statement, the constructors in pytorch/vision's source: torchvision/models/resnet.py (ResNet.__init__,
_make_layer, BasicBlock, Bottleneck), vgg.py (make_layers, cfgs "D", VGG.classifier) and googlenet.py
(GoogLeNet.__init__, Inception, InceptionAux, BasicConv2d; aux_logits=True, its default and the layout of its
published weight file). Each BatchNorm2d saves weight, bias, running_mean, running_var and num_batches_tracked.
Where torchvision is installed, `--from-torchvision` writes the same file from the real models, and
`git diff` shows whether the two agree.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

OUT = Path(__file__).with_name("torchvision_keys.json")


class Keys:
    """Collects (key, shape) pairs in registration order."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, list[int]]] = []

    def conv(self, prefix: str, c_in: int, c_out: int, k: int, bias: bool) -> None:
        self.rows.append((f"{prefix}.weight", [c_out, c_in, k, k]))
        if bias:
            self.rows.append((f"{prefix}.bias", [c_out]))

    def bn(self, prefix: str, c: int) -> None:
        for name in ("weight", "bias", "running_mean", "running_var"):
            self.rows.append((f"{prefix}.{name}", [c]))
        self.rows.append((f"{prefix}.num_batches_tracked", []))

    def linear(self, prefix: str, n_in: int, n_out: int) -> None:
        self.rows += [(f"{prefix}.weight", [n_out, n_in]), (f"{prefix}.bias", [n_out])]


def resnet(layers: tuple[int, ...], bottleneck: bool) -> list:
    k = Keys()
    k.conv("conv1", 3, 64, 7, False)
    k.bn("bn1", 64)
    expansion = 4 if bottleneck else 1
    inplanes = 64
    for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers, strict=True)):
        stride = 1 if i == 0 else 2
        for b in range(blocks):
            p = f"layer{i + 1}.{b}"
            if bottleneck:  # conv1x1(inplanes, planes) → conv3x3(planes, planes) → conv1x1(planes, planes*4)
                k.conv(f"{p}.conv1", inplanes, planes, 1, False)
                k.bn(f"{p}.bn1", planes)
                k.conv(f"{p}.conv2", planes, planes, 3, False)
                k.bn(f"{p}.bn2", planes)
                k.conv(f"{p}.conv3", planes, planes * 4, 1, False)
                k.bn(f"{p}.bn3", planes * 4)
            else:  # conv3x3(inplanes, planes) → conv3x3(planes, planes)
                k.conv(f"{p}.conv1", inplanes, planes, 3, False)
                k.bn(f"{p}.bn1", planes)
                k.conv(f"{p}.conv2", planes, planes, 3, False)
                k.bn(f"{p}.bn2", planes)
            # _make_layer: downsample on the first block when stride != 1 or inplanes != planes * expansion
            if b == 0 and (stride != 1 or inplanes != planes * expansion):
                k.conv(f"{p}.downsample.0", inplanes, planes * expansion, 1, False)
                k.bn(f"{p}.downsample.1", planes * expansion)
            inplanes = planes * expansion
    k.linear("fc", 512 * expansion, 1000)
    return k.rows


def vgg16_bn() -> list:
    k = Keys()
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]  # cfgs["D"]
    idx, c_in = 0, 3
    for v in cfg:
        if v == "M":
            idx += 1  # MaxPool2d
            continue
        k.conv(f"features.{idx}", c_in, v, 3, True)  # nn.Conv2d(in, v, 3, padding=1): bias kept
        k.bn(f"features.{idx + 1}", v)
        idx += 3  # conv, bn, relu
        c_in = v
    k.linear("classifier.0", 512 * 7 * 7, 4096)
    k.linear("classifier.3", 4096, 4096)
    k.linear("classifier.6", 4096, 1000)
    return k.rows


def googlenet() -> list:
    k = Keys()

    def basic(p: str, c_in: int, c_out: int, ks: int) -> None:  # BasicConv2d: conv (no bias) + bn
        k.conv(f"{p}.conv", c_in, c_out, ks, False)
        k.bn(f"{p}.bn", c_out)

    basic("conv1", 3, 64, 7)
    basic("conv2", 64, 64, 1)
    basic("conv3", 64, 192, 3)
    table = [
        ("3a", 192, 64, 96, 128, 16, 32, 32),
        ("3b", 256, 128, 128, 192, 32, 96, 64),
        ("4a", 480, 192, 96, 208, 16, 48, 64),
        ("4b", 512, 160, 112, 224, 24, 64, 64),
        ("4c", 512, 128, 128, 256, 24, 64, 64),
        ("4d", 512, 112, 144, 288, 32, 64, 64),
        ("4e", 528, 256, 160, 320, 32, 128, 128),
        ("5a", 832, 256, 160, 320, 32, 128, 128),
        ("5b", 832, 384, 192, 384, 48, 128, 128),
    ]
    for name, c_in, c1, c3r, c3, c5r, c5, pp in table:
        p = f"inception{name}"
        basic(f"{p}.branch1", c_in, c1, 1)
        basic(f"{p}.branch2.0", c_in, c3r, 1)
        basic(f"{p}.branch2.1", c3r, c3, 3)
        basic(f"{p}.branch3.0", c_in, c5r, 1)
        basic(f"{p}.branch3.1", c5r, c5, 3)  # kernel_size=3 in torchvision (vision#906)
        basic(f"{p}.branch4.1", c_in, pp, 1)  # branch4.0 is the max-pool
    for aux, c_in in (("aux1", 512), ("aux2", 528)):
        basic(f"{aux}.conv", c_in, 128, 1)
        k.linear(f"{aux}.fc1", 2048, 1024)
        k.linear(f"{aux}.fc2", 1024, 1000)
    k.linear("fc", 1024, 1000)
    return k.rows


def from_source() -> dict:
    return {
        "resnet18": resnet((2, 2, 2, 2), False),
        "resnet50": resnet((3, 4, 6, 3), True),
        "vgg16_bn": vgg16_bn(),
        "googlenet": googlenet(),
    }


def from_torchvision() -> dict:
    import torchvision.models as tvm  # only on a machine where torchvision loads

    models = {
        "resnet18": tvm.resnet18(),
        "resnet50": tvm.resnet50(),
        "vgg16_bn": tvm.vgg16_bn(),
        "googlenet": tvm.googlenet(aux_logits=True, init_weights=False),
    }
    return {n: [(k, list(v.shape)) for k, v in m.state_dict().items()] for n, m in models.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from-torchvision", action="store_true", help="dump from an installed torchvision")
    args = parser.parse_args()
    keys = from_torchvision() if args.from_torchvision else from_source()
    # one line per key: compact, and diffs line by line
    lines = ",\n".join(
        f'  "{n}": [\n' + ",\n".join(f"    {json.dumps(r)}" for r in rows) + "\n  ]" for n, rows in keys.items()
    )
    OUT.write_text("{\n" + lines + "\n}\n")
    print(f"wrote {OUT}: " + ", ".join(f"{n} {len(r)} keys" for n, r in keys.items()))


if __name__ == "__main__":
    main()
