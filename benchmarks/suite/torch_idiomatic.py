"""Peer baseline (a): the course's CNN in PyTorch written the way tutorials write it.

Dataset of per-sample tensors, DataLoader(batch_size=32, shuffle=True), per-sample normalisation in __getitem__,
fp32, loss.item() every step. Run by benchmarks/suite/run.py in its own process; prints one JSON line.
Usage: python -m benchmarks.suite.torch_idiomatic --samples 6400 --epochs 1 --seed 0 [--test]
"""

from __future__ import annotations

import argparse
import json
import time

T0 = time.perf_counter()  # wall time from process start, imports and data load included

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

from benchmarks.suite._fmnist import read_idx  # noqa: E402


class FashionMNIST(Dataset):
    def __init__(self, images: np.ndarray, labels: np.ndarray, mean: float, std: float):
        self.images, self.labels, self.mean, self.std = images, labels, mean, std

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        x = torch.from_numpy(self.images[i].astype(np.float32) / 255.0).unsqueeze(0)
        return (x - self.mean) / self.std, int(self.labels[i])


class CourseCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 64, 7, padding=3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(128, 128, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(128, 256, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(2304, 128),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(128, 64),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(64, 10),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--samples", type=int, default=0, help="train on the first N samples (0: all 55,000)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test", action="store_true", help="evaluate on the 10,000 test images at the end")
    args = p.parse_args()
    torch.manual_seed(args.seed)
    x = read_idx("train-images-idx3-ubyte")
    y = read_idx("train-labels-idx1-ubyte")
    x, y = x[:55_000], y[:55_000]
    if args.samples:
        x, y = x[: args.samples], y[: args.samples]
    mean, std = float(x.mean() / 255), float(x.std() / 255)
    loader = DataLoader(FashionMNIST(x, y, mean, std), batch_size=32, shuffle=True)
    model = CourseCNN()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    epoch_rates = []
    for _ in range(args.epochs):
        model.train()
        start, seen, total = time.perf_counter(), 0, 0.0
        for xb, yb in loader:
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            total += loss.item()
            seen += len(yb)
        epoch_rates.append(seen / (time.perf_counter() - start))
    result = {"samples_per_s": epoch_rates, "wall_s": time.perf_counter() - T0}
    if args.test:
        xt = read_idx("t10k-images-idx3-ubyte")
        yt = read_idx("t10k-labels-idx1-ubyte")
        model.eval()
        correct = 0
        with torch.no_grad():
            for xb, yb in DataLoader(FashionMNIST(xt, yt, mean, std), batch_size=1000):
                correct += (model(xb).argmax(1) == yb).sum().item()
        result["test_accuracy"] = correct / len(yt)
        result["wall_s"] = time.perf_counter() - T0
    print(json.dumps(result))


if __name__ == "__main__":
    main()
