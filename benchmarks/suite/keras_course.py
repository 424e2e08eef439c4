"""Peer baseline (b): the course's Keras CNN and recipe on Fashion-MNIST, Keras 3 with the TensorFlow backend.

Runs in its own venv (benchmarks/suite/run.py creates it with `pip install tensorflow-cpu keras`); prints one JSON
line. Usage, from the repository root: python -m benchmarks.suite.keras_course --samples 6400 --epochs 2 --seed 0 [--test]
"""

from __future__ import annotations

import argparse
import json
import os
import time

T0 = time.perf_counter()
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from benchmarks.suite._fmnist import read_idx  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--samples", type=int, default=0)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test", action="store_true")
    args = p.parse_args()
    import keras
    import tensorflow as tf
    from keras import layers

    keras.utils.set_random_seed(args.seed)
    x = read_idx("train-images-idx3-ubyte").astype(np.float32) / 255.0
    y = read_idx("train-labels-idx1-ubyte").astype(np.int64)
    x_train, y_train, x_valid, y_valid = x[5000:], y[5000:], x[:5000], y[:5000]  # the course's split
    if args.samples:
        x_train, y_train = x_train[: args.samples], y_train[: args.samples]
    mean, std = x_train.mean(), x_train.std()
    x_train, x_valid = ((x_train - mean) / std)[..., None], ((x_valid - mean) / std)[..., None]

    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(64, 7, activation="relu", padding="same"),
            layers.MaxPooling2D(2),
            layers.Conv2D(128, 3, activation="relu", padding="same"),
            layers.Conv2D(128, 3, activation="relu", padding="same"),
            layers.MaxPooling2D(2),
            layers.Conv2D(256, 3, activation="relu", padding="same"),
            layers.Conv2D(256, 3, activation="relu", padding="same"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(64, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    rates = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            if batch == 0:  # exclude the first step (graph tracing) from the epoch's rate
                self.t1, self.b1 = time.perf_counter(), batch

        def on_epoch_end(self, epoch, logs=None):
            steps = int(np.ceil(len(x_train) / 32)) - 1
            rates.append(steps * 32 / (time.perf_counter() - self.t1))

    validation = (x_valid, y_valid) if not args.samples else None
    model.fit(
        x_train, y_train, epochs=args.epochs, batch_size=32, validation_data=validation, verbose=0, callbacks=[Timer()]
    )
    result = {
        "samples_per_s": rates,
        "wall_s": time.perf_counter() - T0,
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        "params": model.count_params(),
    }
    if args.test:
        xt = (read_idx("t10k-images-idx3-ubyte").astype(np.float32) / 255.0 - mean) / std
        yt = read_idx("t10k-labels-idx1-ubyte").astype(np.int64)
        result["test_accuracy"] = float(model.evaluate(xt[..., None], yt, verbose=0)[1])
        result["wall_s"] = time.perf_counter() - T0
    print(json.dumps(result))


if __name__ == "__main__":
    main()
