"""cbrun's image source vs keras.utils.image_dataset_from_directory, on the same images, in
the same process.

Writes N JPEG images (two classes, --size pixels) to a temporary folder, then reads them
through both pipelines for --epochs epochs, shuffled, resized to the same size, batched the
same way, and reports images per second over epochs 2 and later (epoch 1 includes tracing
and the operating system's first reads). Two measures: the input pipeline alone (batches
pulled and dropped), and `model.fit` of a small convnet fed by each pipeline.

    .venv/bin/python bench/bench_images.py --images 2000 --size 96 --epochs 4
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def write_images(root: Path, count: int, size: int) -> None:
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    for i in range(count):
        folder = root / ("a" if i % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        image = (rng.random((size, size, 3)) * 255).astype(np.uint8)
        (folder / f"{i:05d}.jpg").write_bytes(tf.io.encode_jpeg(image).numpy())


def cbrun_pipeline(root: Path, size: int, batch: int):
    from cbrun.config.data.images import ImagesData
    from cbrun.engine.data import train_dataset, train_steps
    from cbrun.engine.sources import load_splits

    cfg = ImagesData(source="images", path=root.name, image_size=[size, size],
                     batch_size=batch)
    splits = load_splits(cfg, root.parent, seed=42)
    steps = train_steps(splits.train, batch, None)
    dataset, order = train_dataset(splits.train, batch, seed=1, shuffle=True, steps=steps)
    return dataset, order, len(splits.train)


def keras_pipeline(root: Path, size: int, batch: int):
    import keras
    import tensorflow as tf

    dataset = keras.utils.image_dataset_from_directory(
        root, image_size=(size, size), batch_size=batch, shuffle=True, seed=1, verbose=False)
    return dataset.prefetch(tf.data.AUTOTUNE)


def model(size: int):
    import keras

    net = keras.Sequential([
        keras.Input((size, size, 3)), keras.layers.Rescaling(1 / 255),
        keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2, activation="softmax")])
    net.compile("adam", "sparse_categorical_crossentropy")
    return net


class Timer:
    def __init__(self):
        self.times: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self.start)


def pull(dataset, epochs: int, before_epoch=None) -> list[float]:
    times = []
    for epoch in range(epochs):
        if before_epoch:
            before_epoch(epoch)
        start = time.perf_counter()
        for _ in dataset:
            pass
        times.append(time.perf_counter() - start)
    return times


def fit(dataset, size: int, epochs: int, order=None) -> list[float]:
    import keras

    timer = Timer()
    callback = keras.callbacks.LambdaCallback(on_epoch_begin=timer.on_epoch_begin,
                                              on_epoch_end=timer.on_epoch_end)
    net = model(size)
    net.fit(dataset, epochs=epochs, verbose=0,
            callbacks=[*([order] if order else []), callback])
    return timer.times


def rate(count: int, times: list[float]) -> float:
    return count / statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "images"
        write_images(root, args.images, args.size)
        results = {}
        # Alternated, so that neither pipeline always reads from a warmer page cache.
        for name in ("keras", "cbrun", "keras", "cbrun"):
            if name == "cbrun":
                dataset, order, count = cbrun_pipeline(root, args.size, args.batch)
                piped = pull(dataset, args.epochs, order.set_epoch)
                fitted = fit(dataset, args.size, args.epochs, order)
            else:
                dataset = keras_pipeline(root, args.size, args.batch)
                count = args.images
                piped = pull(dataset, args.epochs)
                fitted = fit(dataset, args.size, args.epochs)
            results.setdefault(name, []).append((rate(count, piped), rate(count, fitted)))
        print(f"{args.images} JPEG images {args.size}x{args.size}, batch {args.batch}, "
              f"{os.cpu_count()} CPUs; images/s, median of epochs 2-{args.epochs}, best of 2")
        for name, rows in results.items():
            pipe = max(r[0] for r in rows)
            trained = max(r[1] for r in rows)
            print(f"  {name:6s} input pipeline {pipe:8.0f}   model.fit {trained:8.0f}")


if __name__ == "__main__":
    main()
