"""The hand-written Keras side of bench/bench_whole.py: the same training as cbrun's config,
written as a plain script, with the same timeline marks as bench/fit_timeline.py; and the
floor, Keras's bare train step.

    python bench/hand_keras.py SPEC.json OUT_DIR            # one training, marks on stderr
    python bench/hand_keras.py --floor SPEC.json [...]      # each spec's floor, JSON on stdout

SPEC.json (written by bench_whole.py): {"model": digits|wide|graph|images, "data": the npz
or the image folder, "epochs", "batch_size", "validation_split", "seed", "callbacks": [{"type":
a keras.callbacks class, its arguments; a file or folder argument relative to OUT_DIR}]}.

The floor (docs/speed.md, "The floor"): the same model and compile, the epoch's batches made
once as tensors and cached in memory, `model.fit` with the whole epoch in one compiled call
(`steps_per_execution` = the epoch's batches: the least dispatch Keras offers), no validation,
no callback but one that reads the clock as each epoch begins and ends, verbose 0; the
median of epochs 2 to 4 (the first traces).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
T0 = time.perf_counter()
PATH_ARGUMENTS = ("filepath", "filename", "log_dir")
FLOOR_EPOCHS = 4


def mark(message: str) -> None:
    print(f"[{time.perf_counter() - T0:8.2f}] {message}", file=sys.stderr, flush=True)


def model_for(keras, spec: dict, steps_per_execution: int = 1):
    """The model of each workload, as bench_whole.py's cbrun config describes it."""
    kind = spec["model"]
    layers = keras.layers
    if kind == "digits":
        model = keras.Sequential([
            keras.Input((64,)), layers.Rescaling(0.0625),
            layers.Dense(128, activation="relu"), layers.Dropout(0.2),
            layers.Dense(10, activation="softmax")])
        optimizer, metrics = keras.optimizers.Adam(0.001), ["accuracy"]
    elif kind == "wide":
        model = keras.Sequential([
            keras.Input((512,)), layers.Dense(1024, activation="relu"),
            layers.Dense(1024, activation="relu"), layers.Dense(10, activation="softmax")])
        optimizer, metrics = "adam", None
    elif kind == "graph":
        # Two inputs, two branches added, a residual block.
        pixels, extra = keras.Input((64,), name="pixels"), keras.Input((16,), name="extra")
        scaled = layers.Rescaling(0.0625, name="scaled")(pixels)
        a = layers.Dense(128, activation="relu", name="a")(scaled)
        b = layers.Dense(128, activation="relu", name="b")(extra)
        joined = layers.Add(name="joined")([a, b])
        hidden = layers.Dense(128, activation="relu", name="hidden")(joined)
        residual = layers.Add(name="residual")([joined, hidden])
        out = layers.Dense(10, activation="softmax", name="digit")(residual)
        model = keras.Model({"pixels": pixels, "extra": extra}, out)
        optimizer, metrics = keras.optimizers.Adam(0.001), ["accuracy"]
    else:  # images
        model = keras.Sequential([
            keras.Input((32, 32, 3)), layers.Rescaling(1 / 255),
            layers.Conv2D(16, 3, activation="relu"), layers.MaxPooling2D(),
            layers.Conv2D(32, 3, activation="relu"), layers.GlobalAveragePooling2D(),
            layers.Dense(3, activation="softmax")])
        optimizer, metrics = keras.optimizers.Adam(0.001), ["accuracy"]
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  metrics=metrics, steps_per_execution=steps_per_execution)
    return model


def digits_model(keras):
    """configs/digits.yaml's model and compile, written by hand (bench/bench_train.py)."""
    return model_for(keras, {"model": "digits"})


def digits_callbacks(keras, out, patience: int) -> list:
    """The five callbacks of configs/digits.yaml, writing under `out`."""
    from bench_whole import WORKLOADS  # this script's folder

    digits = next(w for w in WORKLOADS if w.name == "digits")
    listed = [{**c, "patience": patience} if c["type"] == "EarlyStopping" else c
              for c in digits.callbacks]
    return callbacks_for(keras, {"callbacks": listed}, out)


def arrays(spec: dict):
    """(x, y) of the whole npz; x a dict for the graph model's named inputs."""
    import numpy as np

    with np.load(spec["data"]) as archive:
        if spec["model"] == "graph":
            x = {"pixels": archive["pixels"].astype("float32"),
                 "extra": archive["extra"].astype("float32")}
        else:
            x = archive["x"].astype("float32")
        return x, archive["y"].astype("int32")


def _rows(x, rows):
    return {k: v[rows] for k, v in x.items()} if isinstance(x, dict) else x[rows]


def fit_arguments(keras, spec: dict) -> dict:
    """What `model.fit` takes: arrays and Keras's validation_data (the last rows held out,
    as Keras's validation_split), or the folder read by image_dataset_from_directory."""
    import tensorflow as tf

    share, batch = spec.get("validation_split") or 0.0, spec["batch_size"]
    if spec["model"] == "images":
        common = {"image_size": (32, 32), "batch_size": batch, "seed": spec["seed"],
                  "verbose": False}
        if not share:
            train = keras.utils.image_dataset_from_directory(spec["data"], **common)
            return {"x": train.prefetch(tf.data.AUTOTUNE)}
        train, validation = keras.utils.image_dataset_from_directory(
            spec["data"], validation_split=share, subset="both", **common)
        return {"x": train.prefetch(tf.data.AUTOTUNE),
                "validation_data": validation.prefetch(tf.data.AUTOTUNE)}
    x, y = arrays(spec)
    n = len(y)
    cut = n - int(n * share)
    out = {"x": _rows(x, slice(None, cut)), "y": y[:cut], "batch_size": batch}
    if share:
        out["validation_data"] = (_rows(x, slice(cut, None)), y[cut:])
    return out


def callbacks_for(keras, spec: dict, out: str) -> list:
    made = []
    for entry in spec["callbacks"]:
        kwargs = {k: (os.path.join(out, v) if k in PATH_ARGUMENTS else v)
                  for k, v in entry.items() if k != "type"}
        made.append(getattr(keras.callbacks, entry["type"])(**kwargs))
    return made


def train(spec: dict, out: str) -> None:
    import keras

    mark("imported")

    class Marks(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            mark("Marks.on_epoch_end 0.000s")

        def on_train_end(self, logs=None):
            mark("Marks.on_train_end 0.000s")

    keras.utils.set_random_seed(spec["seed"])
    os.makedirs(out, exist_ok=True)
    fit = fit_arguments(keras, spec)
    model = model_for(keras, spec)
    callbacks = callbacks_for(keras, spec, out)
    mark("fit entered")
    model.fit(epochs=spec["epochs"], callbacks=[*callbacks, Marks()], verbose=0, **fit)
    mark("fit returned")
    model.save(os.path.join(out, "model.keras"))
    mark("done")


def _image_arrays(spec: dict):
    """The training images decoded once, as the floor takes them (its batches pre-made)."""
    import keras
    import numpy as np

    fit = fit_arguments(keras, spec)
    xs, ys = zip(*((x.numpy(), y.numpy()) for x, y in fit["x"]), strict=True)
    return np.concatenate(xs), np.concatenate(ys)


def floor(spec: dict) -> dict:
    """Seconds of one epoch of Keras's bare train step over the same training batches."""
    import keras
    import numpy as np
    import tensorflow as tf

    keras.backend.clear_session()
    keras.utils.set_random_seed(spec["seed"])
    if spec["model"] == "images":
        x, y = _image_arrays(spec)
    else:
        x, y = arrays(spec)
        cut = len(y) - int(len(y) * (spec.get("validation_split") or 0.0))
        x, y = _rows(x, slice(None, cut)), y[:cut]
    steps = -(-len(y) // spec["batch_size"])
    batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(spec["batch_size"])
    batches = batches.cache().repeat()
    list(batches.take(steps))  # the cache filled before the clock starts
    model = model_for(keras, spec, steps_per_execution=steps)
    times: list[float] = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.started)

    model.fit(batches, epochs=FLOOR_EPOCHS, steps_per_epoch=steps, callbacks=[Clock()],
              shuffle=False,
              verbose=0)
    return {"epoch": statistics.median(times[1:]), "first": times[0], "steps": steps,
            "samples": int(np.shape(y)[0])}


def main(argv: list[str]) -> None:
    if argv[0] == "--floor":
        import keras  # noqa: F401 - imported before the clock of the first floor

        result = {}
        for path in argv[1:]:
            spec = json.loads(Path(path).read_text())
            result[spec["model"]] = floor(spec)
        print(json.dumps(result))
        return
    train(json.loads(Path(argv[0]).read_text()), argv[1])


if __name__ == "__main__":
    main(sys.argv[1:])
