"""The hand-written Keras side of bench/bench_whole.py: the same training as cbrun's config,
written as a plain script, with the same timeline marks as bench/fit_timeline.py.

    python bench/hand_keras.py digits|wide DATA.npz OUT_DIR EPOCHS
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
T0 = time.perf_counter()


def mark(message: str) -> None:
    print(f"[{time.perf_counter() - T0:8.2f}] {message}", file=sys.stderr, flush=True)


def digits_model(keras):
    """configs/digits.yaml's model and compile, written by hand."""
    model = keras.Sequential([
        keras.Input((64,)), keras.layers.Rescaling(0.0625),
        keras.layers.Dense(128, activation="relu"), keras.layers.Dropout(0.2),
        keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(0.001),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def digits_callbacks(keras, out, patience: int) -> list:
    """The five callbacks of configs/digits.yaml, writing under `out`."""
    return [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience,
                                      restore_best_weights=True),
        keras.callbacks.ModelCheckpoint(
            os.path.join(out, "ep{epoch:03d}-val_loss{val_loss:.3f}.keras"),
            monitor="val_loss", save_best_only=True),
        keras.callbacks.CSVLogger(os.path.join(out, "log.csv")),
        keras.callbacks.TensorBoard(os.path.join(out, "tensorboard"), histogram_freq=1),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2)]


def main(kind: str, data: str, out: str, epochs: int) -> None:
    import keras
    import numpy as np

    mark("imported")

    class Marks(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            mark("Marks.on_epoch_end 0.000s")

        def on_train_end(self, logs=None):
            mark("Marks.on_train_end 0.000s")

    keras.utils.set_random_seed(42)
    with np.load(data) as archive:
        x, y = archive["x"].astype("float32"), archive["y"].astype("int32")
    os.makedirs(out, exist_ok=True)
    if kind == "digits":
        cut = int(len(x) * 0.8)
        model = digits_model(keras)
        callbacks = digits_callbacks(keras, out, patience=1000)
        fit = {"x": x[:cut], "y": y[:cut], "batch_size": 32,
               "validation_data": (x[cut:], y[cut:])}
    else:
        model = keras.Sequential([
            keras.Input((512,)), keras.layers.Dense(1024, activation="relu"),
            keras.layers.Dense(1024, activation="relu"),
            keras.layers.Dense(10, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        callbacks = [keras.callbacks.CSVLogger(os.path.join(out, "log.csv"))]
        fit = {"x": x, "y": y, "batch_size": 256}
    mark("fit entered")
    model.fit(epochs=epochs, callbacks=[*callbacks, Marks()], verbose=0, **fit)
    mark("fit returned")
    model.save(os.path.join(out, "model.keras"))
    mark("done")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
