"""The Keras side of PredictionSamples: predict on fixed inputs, write PNG, CSV, TensorBoard.

What it writes is keyed by epoch, so a resume rewinds it (PredictionSamplesSpec.rewind)
and writes each epoch exactly once.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import keras
import numpy as np

from cbrun.callbacks.prediction_samples import CSV_NAME, PNG_PATTERN, TB_TAG
from cbrun.errors import ConfigError, Problem, RunError
from cbrun.run.rundir import atomic_write_bytes

# Draws the sample from its own stream of the run's seed, never from the global ones that
# the saved state restores (drawing must not change training).
SAMPLE_STREAM = 16


def _problem(loc: str, message: str) -> ConfigError:
    return ConfigError([Problem(loc=(loc,), message=message)])


def choose(seed: int, available: int, wanted: int) -> np.ndarray:
    """The sample's indices into the split: the same for every epoch and every resume."""
    rng = np.random.default_rng([seed, SAMPLE_STREAM])
    return np.sort(rng.choice(available, size=min(wanted, available), replace=False))


def build(spec: Any, ctx: Any) -> PredictionSamples:
    data = ctx.data.split(spec.split) if ctx.data is not None else None
    if data is None or data[0] is None:
        raise _problem("split", f"the data has no {spec.split} split to draw samples from")
    x, y = data
    if isinstance(x, dict) or isinstance(y, dict):
        raise _problem("split", "PredictionSamples shows models with one input array and "
                                "one target array, not named inputs or outputs")
    names = spec.class_names or ctx.data.class_names
    y = np.asarray(y)
    if names and y.size and y.dtype.kind in "iu" and y.ndim == 1 and y.max() >= len(names):
        raise _problem("class_names", f"{len(names)} class names, but the {spec.split} "
                                      f"labels go up to {y.max()}")
    picked = choose(ctx.data.seed, len(x), spec.samples)
    # Only the picked rows: streamed image files are decoded for these alone.
    x, y = np.asarray(x[picked]), y[picked]
    images = None
    if spec.image_shape is not None:
        if math.prod(spec.image_shape) != math.prod(x.shape[1:]):
            raise _problem("image_shape", f"image_shape {spec.image_shape} holds "
                           f"{math.prod(spec.image_shape)} values, but each {spec.split} "
                           f"input has shape {list(x.shape[1:])}")
        images = x.reshape((len(x), *spec.image_shape))
    elif x.ndim == 4 and x.shape[-1] in (1, 3, 4):
        images = x
    folder = ctx.resolve(spec.directory)
    log_dir = ctx.resolve(spec.log_dir) if spec.log_dir is not None else None
    return PredictionSamples(x, y, picked, images, names, spec.every_n_epochs, folder, log_dir)


class PredictionSamples(keras.callbacks.Callback):
    def __init__(self, x: np.ndarray, y: np.ndarray, indices: np.ndarray,
                 images: np.ndarray | None, class_names: list[str] | None, every: int,
                 folder: Path, log_dir: Path | None):
        super().__init__()
        self.x, self.y, self.indices, self.images = x, y, indices, images
        self.class_names = class_names
        self.every = every
        self.folder = folder
        self.log_dir = log_dir
        self._writer = None
        # (0-based epoch, file name) of the newest grid: what the spec's `events` reports.
        self.last_grid: tuple[int, str] | None = None

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        outputs = keras.ops.convert_to_numpy(self.model(self.x, training=False))
        if outputs.ndim != 2:
            raise RunError(f"PredictionSamples shows models whose output is one row per "
                           f"sample; this model's output has shape {list(outputs.shape)}")
        truth, predicted, probability = interpret(outputs, self.y)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._write_rows(epoch, truth, predicted, probability)
        if self.images is not None:
            self._write_grid(epoch, truth, predicted, probability)

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def label(self, value: Any) -> str:
        if isinstance(value, (int, np.integer)):
            names = self.class_names
            return names[value] if names and 0 <= value < len(names) else str(int(value))
        return format(float(value), ".4g")

    def _write_rows(self, epoch, truth, predicted, probability) -> None:
        path = self.folder / CSV_NAME
        flat = None if self.images is not None else self.x.reshape(len(self.x), -1)
        with path.open("a", newline="") as handle:
            writer = csv.writer(handle)
            if handle.tell() == 0:
                inputs = [] if flat is None else [f"x{i}" for i in range(flat.shape[1])]
                writer.writerow(["epoch", "sample", *inputs, "true", "predicted",
                                 "probability"])
            for row, index in enumerate(self.indices):
                inputs = [] if flat is None else [format(float(v), ".6g") for v in flat[row]]
                prob = "" if probability[row] is None else format(probability[row], ".6f")
                writer.writerow([epoch, int(index), *inputs, self.label(truth[row]),
                                 self.label(predicted[row]), prob])

    def _write_grid(self, epoch, truth, predicted, probability) -> None:
        import tensorflow as tf

        from cbrun.plotting.samples import grid_png

        titles, correct = [], []
        for t, p, prob in zip(truth, predicted, probability, strict=True):
            shown = f"pred {self.label(p)}" + ("" if prob is None else f" ({prob:.2f})")
            titles.append(f"true {self.label(t)}\n{shown}")
            correct.append(t == p if prob is not None else None)
        png = grid_png(self.images, titles, correct, f"epoch {epoch + 1}")
        name = PNG_PATTERN.format(epoch=epoch + 1)
        atomic_write_bytes(self.folder / name, png)
        self.last_grid = (epoch, name)
        if self.log_dir is None:
            return
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(str(self.log_dir))
        with self._writer.as_default():
            tf.summary.image(TB_TAG, tf.image.decode_png(png)[None], step=epoch)
        self._writer.flush()


def interpret(outputs: np.ndarray, y: np.ndarray) -> tuple[list, list, list]:
    """(truth, predicted, probability of the prediction) per sample. Several outputs are
    classes (logits go through softmax); one output with 0/1 labels is a yes/no (logits go
    through a sigmoid); anything else is a value, shown as it is, with no probability."""
    count, units = outputs.shape
    if units > 1:
        probs = outputs
        if np.any(probs < 0) or np.any(probs > 1) or not np.allclose(probs.sum(1), 1, atol=1e-3):
            shifted = np.exp(outputs - outputs.max(1, keepdims=True))
            probs = shifted / shifted.sum(1, keepdims=True)
        predicted = [int(i) for i in probs.argmax(1)]
        probability = [float(probs[i, c]) for i, c in enumerate(predicted)]
        truth = ([int(i) for i in y.argmax(1)] if y.ndim == 2 and y.shape[1] == units
                 else [int(v) for v in y.reshape(count)])
        return truth, predicted, probability
    values = outputs[:, 0]
    labels = y.reshape(count)
    if np.all(np.isin(labels, (0, 1))):
        if np.any(values < 0) or np.any(values > 1):
            values = 1 / (1 + np.exp(-values))
        predicted = [int(v >= 0.5) for v in values]
        probability = [float(v if p else 1 - v) for v, p in zip(values, predicted, strict=True)]
        return [int(v) for v in labels], predicted, probability
    return [float(v) for v in labels], [float(v) for v in values], [None] * count

