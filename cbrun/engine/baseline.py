"""The trivial model's score, the number a run must beat: per output, the class shares of
the training split (so the majority class) for a classifier, the training mean for a
regression, scored with the run's own compiled loss and metrics on the validation split
(the training split when there is none), before epoch 1.

The constant predictions go through Keras's own loss and metric objects, compiled exactly
as the run's model is, so `val_accuracy` of the baseline means what the run's means."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from cbrun.config.root import RunConfig
from cbrun.engine.sources import Split, Splits

# Keras's names, lower-cased without underscores, by what the target is.
_CLASSES = {"sparsecategoricalcrossentropy": "sparse",
            "sparsecategoricalfocalcrossentropy": "sparse",
            "categoricalcrossentropy": "categorical", "categoricalfocalcrossentropy":
            "categorical", "binarycrossentropy": "binary", "binaryfocalcrossentropy": "binary"}
_NUMBERS = ("mse", "meansquarederror", "mae", "meanabsoluteerror", "mape",
            "meanabsolutepercentageerror", "msle", "meansquaredlogarithmicerror", "huber",
            "logcosh")
_EPS = 1e-7


def _loss_kind(spec: Any) -> tuple[str | None, bool]:
    """(sparse | categorical | binary | number | None, from_logits) of one output's loss."""
    name = spec if isinstance(spec, str) else spec.type
    kwargs = {} if isinstance(spec, str) else spec.kwargs
    key = name.lower().replace("_", "")
    if key in _CLASSES:
        return _CLASSES[key], bool(kwargs.get("from_logits", False))
    return ("number" if key in _NUMBERS else None), False


def _per_output(value: Any, names: list[str]) -> dict[str, Any]:
    if isinstance(value, dict):
        return {name: value.get(name) for name in names}
    return {name: value for name in names}


def _pick(y: Any, name: str, single: bool) -> Any:
    if isinstance(y, dict):
        return y[name]
    return y if single else None


def _weighted(y: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """(values, how many rows hold each, or None for one each) of a split's targets: a
    streamed table's as its labels were counted (never its rows), an array as it is."""
    if hasattr(y, "counted"):
        found = y.counted()
        return found if found is not None else (np.array([y.mean()]), None)
    return np.asarray(y), None


def _constant(kind: str, logits: bool, y: Any, shape: tuple[int, ...]) -> np.ndarray:
    """The prediction of one output for every row (without the batch axis)."""
    y, weights = _weighted(y)
    if kind == "sparse":
        counts = np.bincount(y.reshape(-1).astype(np.int64), weights=weights,
                             minlength=shape[-1])
        prior = counts[:shape[-1]] / max(1, counts.sum())
        return np.log(np.clip(prior, _EPS, 1)) if logits else prior
    if kind in ("categorical", "binary"):
        share = np.average(y.reshape(len(y), -1), axis=0, weights=weights).reshape(shape)
        if kind == "binary" and logits:
            share = np.clip(share, _EPS, 1 - _EPS)
            return np.log(share / (1 - share))
        if kind == "categorical" and logits:
            return np.log(np.clip(share, _EPS, 1))
        return share
    return np.average(y.astype(np.float64), axis=0, weights=weights).reshape(shape)


class _Constant(keras.layers.Layer):
    def __init__(self, value: np.ndarray, **kwargs):
        super().__init__(dtype="float32", **kwargs)
        self.value = value.astype(np.float32)

    def call(self, x):
        rows = keras.ops.shape(x)[0]
        return keras.ops.broadcast_to(keras.ops.convert_to_tensor(self.value),
                                      (rows, *self.value.shape))


def what_it_predicts(kinds: dict[str, str]) -> str:
    shown = {"sparse": "the training class shares", "categorical": "the training class shares",
             "binary": "the training label shares", "number": "the training mean"}
    return " and ".join(sorted({shown[k] for k in kinds.values()}))


def trivial_model(model: keras.Model, config: RunConfig, train: Split
                  ) -> tuple[keras.Model, str] | None:
    """(a model that predicts for every row what `model`'s outputs would predict knowing
    only the training targets, compiled as the run compiles; what it predicts), or None
    where there is no such model (a loss cbrun does not know, training data that is a
    tf.data.Dataset, outputs the training labels do not name)."""
    from cbrun.engine.model import compile_model

    if train is None or train.dataset is not None or train.y is None:
        return None
    names = list(getattr(model, "output_names", None) or ["output"])
    single = len(model.outputs) == 1
    losses = _per_output(config.compile.loss, names)
    kinds, constants = {}, {}
    for name, tensor in zip(names, model.outputs, strict=True):
        spec = losses.get(name)
        if spec is None:
            return None
        kind, logits = _loss_kind(spec)
        y = _pick(train.y, name, single)
        if kind is None or y is None or len(y) == 0:
            return None
        shape = tuple(int(d) for d in tensor.shape[1:])
        try:
            constants[name] = _constant(kind, logits, y, shape)
        except ValueError:
            return None  # labels that do not fit the output: the data check says why
        kinds[name] = kind
    inputs = keras.Input((1,))
    outputs = {name: _Constant(value, name=name)(inputs) for name, value in constants.items()}
    trivial = keras.Model(inputs, outputs if not single else next(iter(outputs.values())))
    compile_model(trivial, config, 1)
    trivial.run_eagerly = True  # one evaluation: tracing would cost more than it runs
    trivial.jit_compile = False
    return trivial, what_it_predicts(kinds)


def score(trivial: keras.Model, split: Split) -> dict[str, float] | None:
    """The trivial model's loss and metrics on `split` (Keras's names: loss, accuracy):
    arrays in memory through Keras's test step, a streamed table through `evaluate`."""
    if split is None or split.dataset is not None or split.y is None:
        return None
    rows = len(split)
    y = split.y
    if isinstance(y, dict) and len(trivial.outputs) == 1:
        y = next(iter(y.values()))
    if split.table is not None:  # its targets read a window at a time, never all at once
        metrics = trivial.evaluate(_streamed_targets(split, len(trivial.outputs) == 1),
                                   verbose=0, return_dict=True)
        metrics = {k: float(v) for k, v in metrics.items()}
    else:
        metrics = _scored_in_batches(trivial, y, rows)
    return {k: v for k, v in sorted(metrics.items(), key=lambda kv: "loss" not in kv[0])
            if np.isfinite(v)}


def _scored_in_batches(trivial: keras.Model, y: Any, rows: int) -> dict[str, float]:
    """Keras's test step, batch after batch (up to 4096 rows each), the metrics accumulating
    as `evaluate` accumulates them, without `evaluate`'s tf.data pipeline and callback list,
    built for a single pass: they were most of the baseline's time, which every run pays
    before its first epoch (0.2 s against 0.05 s, 2 cores)."""
    batch = max(1, min(rows, 4096))
    trivial.make_test_function()
    trivial.reset_metrics()
    logs: dict[str, Any] = {}
    for start in range(0, rows, batch):
        part = slice(start, min(rows, start + batch))
        targets = ({k: np.asarray(v)[part] for k, v in y.items()} if isinstance(y, dict)
                   else np.asarray(y)[part])
        inputs = np.zeros((part.stop - part.start, 1), np.float32)
        logs = trivial.test_function(iter([(inputs, targets, None)]))
    return {k: float(keras.ops.convert_to_numpy(v)) for k, v in logs.items()}


def _streamed_targets(split: Split, single: bool):
    """A streamed split's batches with a zero in place of each row's inputs (all the
    trivial model reads)."""
    import tensorflow as tf

    from cbrun.engine.data import as_written, eval_data

    data, _ = eval_data(split, split.table.window)  # a batch a window: never one across two

    @as_written
    def zeros(x, y):
        if isinstance(y, dict) and single:
            y = next(iter(y.values()))
        rows = tf.shape(tf.nest.flatten(y)[0])[0]
        return tf.zeros((rows, 1), tf.float32), y

    return data.map(zeros)


def baseline(model: keras.Model, config: RunConfig, splits: Splits) -> dict[str, Any] | None:
    """{split, predicts, metrics: {val_loss: ..., ...}} of the run, scored on the validation
    split (the training split without one), or None where there is no trivial model."""
    made = trivial_model(model, config, splits.train)
    scored = splits.validation or splits.train
    metrics = made and score(made[0], scored)
    if not metrics:
        return None
    prefix = "val_" if scored is splits.validation else ""
    return {"split": "validation" if prefix else "train", "predicts": made[1],
            "metrics": {f"{prefix}{k}": v for k, v in metrics.items()}}
