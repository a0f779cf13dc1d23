"""What a state saved inside an epoch costs (fit.state_every): how long the training thread
stops for it (the copy of every variable, the metrics' accumulators, the callbacks' and
random states; the write happens on a thread), the bytes written, and what that is as a
share of training time at the default interval (10 minutes) and at a save every 100 batches.

    python bench/bench_batch_state.py [--rounds 5]

Two models: the digits MLP of configs/digits.yaml (batch 32) and a ~25M-parameter MLP with
Adam (batch 256). Medians; the load average is printed next to the numbers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _models(keras):
    digits = keras.Sequential([keras.Input((64,)), keras.layers.Rescaling(0.0625),
                               keras.layers.Dense(128, activation="relu"),
                               keras.layers.Dropout(0.2),
                               keras.layers.Dense(10, activation="softmax")])
    big = keras.Sequential([keras.Input((5000,)), keras.layers.Dense(5000, activation="relu"),
                            keras.layers.Dense(10, activation="softmax")])
    return [("digits MLP", digits, 64, 32), ("25M-parameter MLP", big, 5000, 256)]


def _measure(keras, name, model, width, batch, rounds):
    from cbrun.state.capture import capture_state
    from cbrun.state.writer import StateWriter

    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch * 40, width)).astype("float32")
    y = rng.integers(0, 10, len(x))
    model.fit(x[:batch * 4], y[:batch * 4], batch_size=batch, epochs=1, verbose=0)  # traced
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
    step = (time.perf_counter() - start) / 40
    stalls, sizes = [], []
    with tempfile.TemporaryDirectory() as folder:
        writer = StateWriter()
        for i in range(rounds):
            start = time.perf_counter()
            state = capture_state(model, [], 3, {"best": None}, batches_done=10 + i)
            writer.save(Path(folder), state, lambda: None)
            stalls.append(time.perf_counter() - start)
            writer.wait()
            written = Path(folder) / "state"
            newest = max(written.glob("epoch-*"), key=lambda p: p.stat().st_mtime)
            sizes.append(sum(p.stat().st_size for p in newest.iterdir()))
        writer.close()
    stall = statistics.median(stalls)
    return {"name": name, "params": model.count_params(), "step": step, "stall": stall,
            "bytes": statistics.median(sizes), "share_default": stall / 600,
            "share_100": stall / (100 * step)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    keras.utils.set_random_seed(0)
    rows = [_measure(keras, *spec, args.rounds) for spec in _models(keras)]
    print(f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; medians of "
          f"{args.rounds} saves")
    print(f"{'model':<20}{'params':>12}{'step':>10}{'stall/save':>12}{'written':>11}"
          f"{'at 10m':>9}{'every 100':>11}")
    for r in rows:
        print(f"{r['name']:<20}{r['params'] / 1e6:>11.2f}M{r['step'] * 1e3:>8.1f}ms"
              f"{r['stall'] * 1e3:>10.1f}ms{r['bytes'] / 2**20:>9.1f}MB"
              f"{r['share_default']:>9.3%}{r['share_100']:>11.2%}")


if __name__ == "__main__":
    main()
