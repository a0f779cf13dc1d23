"""The metric that matters for each output of a run's model, on one of the run's splits: the
accuracy of a classifier (an output whose loss is a cross-entropy, cbrun/engine/outputs.py),
the mean absolute error of anything else.

A quantized export computes slightly different numbers by design, so what tells whether it
still does its job is this metric next to the float model's, on the same samples (`cbrun
export --quantize`, `cbrun benchmark`). Any predictor (the Keras model, an artifact's
runtime) goes through the same batches here, so their scores differ only by what they
compute.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from cbrun.engine.outputs import OutputTask, model_outputs, output_tasks
from cbrun.engine.sources import Split
from cbrun.errors import RunError
from cbrun.run.handle import OpenRun

# (inputs of one batch) -> [(output name, array)] in the Keras model's output order.
Predictor = Callable[[Any], list[tuple[str, np.ndarray]]]


@dataclass(frozen=True)
class Score:
    output: str
    metric: str  # accuracy | mae
    value: float

    def shown(self) -> str:
        return f"{self.metric if self.metric == 'accuracy' else 'MAE'} {self.value:.4g}"


def scoring_split(splits: Any) -> tuple[str, Split]:
    """The split a model is scored on: the run's validation split, else its training split
    (a run trained without one), and its name."""
    return next((name, split) for name, split in (("validation", splits.validation),
                                                  ("train", splits.train))
                if split is not None)


def as_model_takes(x: Any, model: Any) -> Any:
    """Samples in the dtypes of the model's inputs; text stays text (str objects, which
    every runtime takes for a string tensor)."""
    dtypes = {t.name: t.dtype for t in model.inputs}

    def cast(values: Any, dtype: str | None) -> np.ndarray:
        values = np.asarray(values)
        if dtype == "string":
            return values.astype(object)
        return values.astype(dtype) if dtype else values

    if isinstance(x, dict):
        return {k: cast(v, dtypes.get(k)) for k, v in x.items()}
    return cast(x, model.inputs[0].dtype)


def rows(split: Split, picked: np.ndarray, model: Any) -> Any:
    """The samples at `picked` of an in-memory or streamed split, as the model takes them
    (image files decoded here)."""
    x = split.x
    got = {k: np.asarray(v[picked]) for k, v in x.items()} if isinstance(x, dict) \
        else np.asarray(x[picked])
    return as_model_takes(got, model)


def batches(split: Split, batch_size: int, model: Any) -> Iterator[tuple[Any, Any]]:
    """(inputs, labels) of the split in file order, `batch_size` at a time; a loader's
    tf.data.Dataset is taken batch by batch as it gives them."""
    if split.dataset is not None:
        for batch in split.dataset:
            x, y = batch[0], batch[1]
            x = {k: np.asarray(v) for k, v in x.items()} if isinstance(x, dict) \
                else np.asarray(x)
            y = {k: np.asarray(v) for k, v in y.items()} if isinstance(y, dict) \
                else np.asarray(y)
            yield as_model_takes(x, model), y
        return
    count = len(split)
    for start in range(0, count, batch_size):
        picked = np.arange(start, min(start + batch_size, count))
        y = split.y
        labels = {k: _picked(v, picked) for k, v in y.items()} if isinstance(y, dict) \
            else _picked(y, picked)
        yield rows(split, picked, model), labels


def _picked(y: Any, rows: np.ndarray) -> np.ndarray:
    """Rows of targets: an array's, or a streamed table's read from the pieces that hold
    them (never the whole column)."""
    return np.asarray(y[rows]) if hasattr(y, "counted") else np.asarray(y)[rows]


def output_names(model: Any) -> list[str]:
    """A functional model's output names; a Sequential one has one output, named by
    position as TensorFlow's signatures name it (`output_0`)."""
    return list(getattr(model, "output_names", None) or
                [f"output_{i}" for i in range(len(model.outputs))])


def keras_predictor(model: Any) -> Predictor:
    """The Keras model as a predictor: its compiled predict step, one batch per call (text
    as string tensors, which Keras's array adapter does not take as NumPy arrays)."""
    import tensorflow as tf

    names = output_names(model)
    single = len(names) == 1

    def tensors(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: tf.constant(v) for k, v in x.items()}
        return tf.constant(x)

    def predict(x: Any) -> list[tuple[str, np.ndarray]]:
        out = model.predict_on_batch(tensors(x))
        if isinstance(out, dict):
            return [(name, np.asarray(out[name])) for name in names]
        values = [out] if single else list(out)
        return [(name, np.asarray(v)) for name, v in zip(names, values, strict=True)]

    return predict


def tasks_of(run: OpenRun, model: Any) -> list[tuple[str, OutputTask]]:
    """(output name, what it predicts) for each output of the model, in its order."""
    return list(zip(output_names(model),
                    output_tasks(run.config, run.run_dir, model_outputs(model)), strict=True))


def score(run: OpenRun, model: Any, split: Split, predictors: dict[str, Predictor],
          batch_size: int) -> tuple[dict[str, list[Score]], int]:
    """({predictor name: [Score per output]}, samples) over the whole split, every
    predictor on the same batches (one pass: image files are decoded once)."""
    tasks = tasks_of(run, model)
    names = [name for name, _ in tasks]
    totals = {key: [[0.0, 0] for _ in tasks] for key in predictors}
    samples = 0
    for x, y in batches(split, batch_size, model):
        size = _size(x)
        samples += size
        labels = _labels_by_output(y, names)
        whole = padded(x, batch_size)
        for key, predict in predictors.items():
            for total, (_, task), (_, value), truth in zip(
                    totals[key], tasks, predict(whole), labels, strict=True):
                total[0] += _summed(task, np.asarray(value)[:size], truth)
                total[1] += len(truth)
    scored = {}
    for key, per_output in totals.items():
        scored[key] = [Score(name, "accuracy" if task.classifies else "mae",
                             summed / count if count else float("nan"))
                       for (name, task), (summed, count) in zip(tasks, per_output, strict=True)]
    return scored, samples


def _size(x: Any) -> int:
    return len(next(iter(x.values())) if isinstance(x, dict) else x)


def padded(x: Any, batch_size: int) -> Any:
    """A short last batch made whole by repeating its last sample: every call then has the
    same shape, so Keras traces its predict step once and LiteRT never resizes."""
    missing = batch_size - _size(x)
    if missing <= 0:
        return x

    def pad(values: np.ndarray) -> np.ndarray:
        return np.concatenate([values, np.repeat(values[-1:], missing, axis=0)])

    return {k: pad(v) for k, v in x.items()} if isinstance(x, dict) else pad(x)


def _labels_by_output(y: Any, names: list[str]) -> list[np.ndarray]:
    if isinstance(y, dict):
        missing = [n for n in names if n not in y]
        if missing:
            raise RunError(f"the run's labels name no output {', '.join(missing)}")
        return [np.asarray(y[name]) for name in names]
    if len(names) != 1:
        raise RunError(f"the model has {len(names)} outputs, the run's labels one")
    return [np.asarray(y)]


def _summed(task: OutputTask, predicted: np.ndarray, truth: np.ndarray) -> float:
    """Correct predictions (a classifier), else the sum over samples of each sample's
    mean absolute error."""
    if task.classifies:
        return float(np.sum(task.class_ids(predicted) == task.label_ids(truth)))
    predicted = predicted.reshape(len(predicted), -1).astype(np.float64)
    truth = truth.reshape(len(truth), -1).astype(np.float64)
    if truth.shape != predicted.shape:
        raise RunError(f"labels of shape {truth.shape[1:]} for an output of shape "
                       f"{predicted.shape[1:]}")
    return float(np.abs(predicted - truth).mean(axis=1).sum())
