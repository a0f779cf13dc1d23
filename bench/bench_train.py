"""cbrun vs the same training written by hand in Keras, measured in one process.

Both train the digits MLP of configs/digits.yaml for the same number of epochs with the same
callbacks (EarlyStopping that never fires, best-only ModelCheckpoint, CSVLogger, TensorBoard,
ReduceLROnPlateau) and save the final model. cbrun additionally validates the config, writes
the run directory and saves its exact-resume state every epoch.

    .venv/bin/python bench/bench_train.py --epochs 20 --repeats 3   # make bench runs bench_whole.py

Prints the median wall time of each and the ratio cbrun / hand-written, with the five
callbacks and without any (where per-step overhead, not callback I/O, dominates).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from hand_keras import digits_callbacks, digits_model  # bench/, this script's folder

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]


def hand_written(out: Path, epochs: int, with_callbacks: bool = True) -> float:
    import keras

    from cbrun.config.data import DigitsData
    from cbrun.engine.sources import load_splits

    started = time.perf_counter()
    keras.backend.clear_session()
    keras.utils.set_random_seed(42)
    arrays = load_splits(DigitsData(validation_split=0.2), REPO, seed=42)
    model = digits_model(keras)
    out.mkdir(parents=True, exist_ok=True)
    model.fit(arrays.train.x, arrays.train.y, batch_size=32, epochs=epochs,
              validation_data=(arrays.validation.x, arrays.validation.y), verbose=0,
              callbacks=digits_callbacks(keras, str(out), patience=epochs)
              if with_callbacks else [])
    model.save(out / "model.keras")
    return time.perf_counter() - started


def through_cbrun(out: Path, epochs: int, steps_per_execution: str = "auto",
                  with_callbacks: bool = True) -> float:
    from cbrun.cli import main

    callbacks = (["--set", f"callbacks.EarlyStopping.patience={epochs}"] if with_callbacks
                 else ["--set", "callbacks=[]"])
    started = time.perf_counter()
    try:
        main(["train", str(REPO / "configs" / "digits.yaml"), "--runs-dir", str(out),
              "--quiet", "--set", f"fit.epochs={epochs}", *callbacks,
              "--set", f"compile.steps_per_execution={steps_per_execution}"])
    except SystemExit as exc:
        if exc.code:
            raise
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import keras  # noqa: F401  (imported once up front: both sides are timed without it)

    scenarios = {
        "keras": lambda out: hand_written(out, args.epochs),
        "cbrun": lambda out: through_cbrun(out, args.epochs),
        "cbrun-spe1": lambda out: through_cbrun(out, args.epochs, "1"),
        "bare-keras": lambda out: hand_written(out, args.epochs, with_callbacks=False),
        "bare-cbrun": lambda out: through_cbrun(out, args.epochs, with_callbacks=False),
        "bare-cbrun-spe1": lambda out: through_cbrun(out, args.epochs, "1", False),
    }
    times: dict[str, list[float]] = {name: [] for name in scenarios}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        hand_written(root / "warmup-keras", 1)
        through_cbrun(root / "warmup-cbrun", 1)
        for i in range(args.repeats):  # interleaved, so machine noise hits all alike
            for name, scenario in scenarios.items():
                times[name].append(scenario(root / f"{name}-{i}"))
    med = {name: statistics.median(values) for name, values in times.items()}
    print(f"digits MLP, {args.epochs} epochs, median of {args.repeats} (ratio to hand-written):")
    print("  with EarlyStopping, ModelCheckpoint, CSVLogger, TensorBoard, ReduceLROnPlateau:")
    print(f"    hand-written Keras                  {med['keras']:6.2f} s")
    for name, label in (("cbrun", "auto"), ("cbrun-spe1", "1")):
        print(f"    cbrun (steps_per_execution: {label:<4})   {med[name]:6.2f} s"
              f"   ratio {med[name] / med['keras']:.2f}")
    print("  no callbacks (cbrun still writes log.csv, run.json and resume state):")
    print(f"    hand-written Keras                  {med['bare-keras']:6.2f} s")
    for name, label in (("bare-cbrun", "auto"), ("bare-cbrun-spe1", "1")):
        print(f"    cbrun (steps_per_execution: {label:<4})   {med[name]:6.2f} s"
              f"   ratio {med[name] / med['bare-keras']:.2f}")

if __name__ == "__main__":
    main()
