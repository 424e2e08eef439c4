"""The validation pass with BatchNorm folded into the convolutions against the model as it trains, on this CPU.

    python -m benchmarks.features.val_fold                     # net N (the fast recipe's fp32 net to 2026-12-06), 5,000 images, batch 500
    python -m benchmarks.features.val_fold --net lecture_cnn --threads 1

Times `Trainer.evaluate`'s own path (`infer.run` over batches of the validation loader's size) both ways with
`runtime.measure` (warm-up, interleaved rounds, the fastest block of each) and prints samples/s and the ratio. The
trainer folds on the CPU (`Trainer.evaluates_folded`); each epoch's validation and a time budget's reserve for it
follow this rate.
"""

from __future__ import annotations

import argparse

import torch

from cnnlab import infer
from cnnlab.models import create_model
from cnnlab.runtime import measure

NET = "CL16k3-BN-MP4-CL32k3-BN-MP4-CL64k3-BN-MP4-CL128k3-BN-GAP-FC10"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--net", default=NET)
    p.add_argument("--images", type=int, default=5000)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = create_model(a.net, num_classes=10, in_chans=1).to(memory_format=torch.channels_last)
    batches = list(torch.randn(a.images, 1, 28, 28).split(a.batch))
    times = measure(
        {fold: (lambda fold=fold: infer.run(model, batches, "cpu", "fp32", fold_bn=fold)) for fold in (False, True)},
        rounds=4,
        block_s=0.5,
    )
    print(f"{a.net}, {a.images:,} images, batch {a.batch}, {a.threads} thread(s), fp32")
    for fold in (False, True):
        print(f"  {'folded' if fold else 'as it trains'}: {a.images / times[fold]:10,.0f} samples/s")
    print(f"  folded / as it trains: {times[False] / times[True]:.2f}×")


if __name__ == "__main__":
    main()
