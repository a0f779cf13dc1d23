"""Splits in, tf.data pipelines out, with the data order a pure function of (seed, epoch).

Keras shuffles numpy inputs with TensorFlow's stateful random ops, so a process that
restarts at epoch k draws a different order than the uninterrupted run did. cbrun draws
epoch k's order from numpy.random.default_rng([seed, k]) instead: a restart changes nothing.

The order of the epoch in flight is the only one in memory: `EpochOrder` (the first
callback) writes it into a variable at the start of the epoch, and the training dataset
reads that variable each time Keras starts iterating it, once per epoch. No Python runs
inside tf.data (tf.data threads calling into a finishing interpreter once crashed a run).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from cbrun.engine.sources import Split
from cbrun.engine.sources.decode import read_image
from cbrun.engine.sources.images import images_named
from cbrun.errors import ConfigError, Problem

# cbrun's own tf.data functions are traced as written: they hold no Python control flow on
# tensors for AutoGraph to rewrite, and converting them (parsing their source and every
# function they call) cost a wide run's start 0.2-0.4 s of the training thread, the only
# AutoGraph of the run (Keras's train step opts out of it too).
as_written = tf.autograph.experimental.do_not_convert


def epoch_order(seed: int, epoch: int, n: int, shuffle: bool) -> np.ndarray:
    if not shuffle:
        return np.arange(n, dtype=np.int64)
    return np.random.default_rng([seed, epoch]).permutation(n)


def epoch_orders(seed: int, first: int, last: int, n: int, shuffle: bool) -> Iterator:
    """The orders of epochs [first, last), one at a time: never all of them at once."""
    for epoch in range(first, last):
        yield epoch_order(seed, epoch, n, shuffle)


def batches_per_epoch(n: int, batch_size: int, cap: int | None) -> int:
    full = -(-n // batch_size)
    return min(full, cap) if cap else full


class EpochOrder(keras.callbacks.Callback):
    """Puts epoch k's order in place before Keras iterates the training data for epoch k."""

    def __init__(self, seed: int, n: int, shuffle: bool):
        super().__init__()
        self.seed, self.n, self.shuffle = seed, n, shuffle
        self.order = tf.Variable(np.zeros(n, np.int32), trainable=False, name="epoch_order")

    def set_epoch(self, epoch: int) -> None:
        self.order.assign(epoch_order(self.seed, epoch, self.n, self.shuffle).astype(np.int32))

    def on_epoch_begin(self, epoch, logs=None):
        self.set_epoch(epoch)


class StreamEpoch(keras.callbacks.Callback):
    """A streamed table's EpochOrder: the epoch in flight, which the pipeline reads when
    Keras starts iterating it; the order itself is drawn a window at a time
    (cbrun/data/order.py)."""

    def __init__(self):
        super().__init__()
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="stream_epoch")

    def set_epoch(self, epoch: int) -> None:
        self.epoch.assign(epoch)

    def on_epoch_begin(self, epoch, logs=None):
        self.set_epoch(epoch)


def _table_specs(rows) -> tuple[Any, Any]:
    """The (x, y) TensorSpecs of a streamed table's batches: each input's columns as
    float32, or as strings for text; the targets as the split's arrays hold them."""

    def one(columns: list[str]):
        return tf.TensorSpec((None, len(columns)),
                             tf.string if rows.text_group(columns) else tf.float32)

    from cbrun.data.stream import targets_of

    def target(values):
        return tf.TensorSpec((None, *values.shape[1:]), tf.as_dtype(values.dtype))

    groups = rows.groups
    x = {k: one(c) for k, c in groups.items()} if isinstance(groups, dict) else one(groups)
    targets = targets_of(rows)
    y = ({k: target(v) for k, v in targets.items()} if isinstance(targets, dict)
         else target(targets))
    return x, y


def _table_batches(rows, batch_size: int, seed: int, shuffle: bool, epoch: Any,
                   start_row: int = 0) -> tf.data.Dataset:
    """A streamed table's batches in the order of epoch `epoch` (a variable read when the
    iteration starts, or a number): pyarrow reads and encodes a window of rows in Python
    (cbrun/data/stream.py), the next one while the current one trains; its batches are
    gathered in the window's order by TensorFlow."""
    x_spec, y_spec = _table_specs(rows)

    def generate(at_epoch, at_row):
        yield from rows.windows(seed, int(at_epoch), shuffle, int(at_row))

    @as_written
    def one_epoch(_):
        now = epoch.read_value() if isinstance(epoch, tf.Variable) else \
            tf.constant(epoch, tf.int64)
        return tf.data.Dataset.from_generator(
            generate, args=(now, tf.constant(start_row, tf.int64)),
            output_signature=(x_spec, y_spec, tf.TensorSpec((None,), tf.int64)))

    @as_written
    def batches(x, y, order):
        return (tf.data.Dataset.from_tensor_slices(order).batch(batch_size)
                .map(as_written(lambda idx: (_gather(x, idx), _gather(y, idx)))))

    return tf.data.Dataset.range(1).flat_map(one_epoch).prefetch(1).flat_map(batches)


def _map(value: Any, function) -> Any:
    if isinstance(value, dict):
        return {k: function(v) for k, v in value.items()}
    return function(value)


def _gather(value: Any, idx):
    return _map(value, lambda v: tf.gather(v, idx))


def _constant(value: Any, floatx: bool = False):
    """Tensors of an array or a dict of arrays; floatx: other floats cast to Keras's floatx,
    as its array adapter does with what `fit` and `evaluate` are given."""
    if isinstance(value, dict):
        return {k: _constant(v, floatx) for k, v in value.items()}
    value = np.asarray(value)
    if floatx and value.dtype.kind == "f" and value.dtype != np.dtype(keras.config.floatx()):
        value = value.astype(keras.config.floatx())
    return tf.constant(value)


def _samples(split: Split, indices: tf.data.Dataset, batch_size: int) -> tf.data.Dataset:
    """Batches of `split` in the order `indices` gives: in-memory arrays are gathered a batch
    at a time; image files are read and decoded in parallel, in order."""
    y = _constant(split.y)
    if split.images is not None:
        files = split.x
        paths = tf.constant(files.encoded)
        return (indices
                .map(lambda i: (read_image(tf.gather(paths, i), files), tf.gather(y, i)),
                     num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
                .batch(batch_size))
    x = _constant(split.x)
    return (indices.batch(batch_size)
            .map(as_written(lambda idx: (_gather(x, idx), _gather(y, idx))),
                 num_parallel_calls=tf.data.AUTOTUNE, deterministic=True))


# Training arrays up to this size are gathered into epoch order once per epoch (one copy
# more in memory); larger ones a batch at a time. Same batches either way.
WHOLE_EPOCH_BYTES = 256 * 2**20


def _nbytes(value: Any) -> int:
    values = value.values() if isinstance(value, dict) else [value]
    return sum(np.asarray(v).nbytes for v in values)


def _array_batches(split: Split, batch_size: int, order: tf.Variable, start: int,
                   whole_epoch: bool) -> tf.data.Dataset:
    """The batches of an epoch of in-memory arrays from batch `start` on, in the order read
    as the iteration starts: batch i holds rows order[i*b:(i+1)*b], the last one shorter.

    Never a sample at a time: cutting the epoch into samples and batching them again is
    tf.data work per sample (16,384 an epoch for the wide MLP: 0.13-0.17 s of processor
    time an epoch with the gather, against 0.11 s now; docs/speed.md, issue 28's floor).
    `whole_epoch`: the epoch gathered at once, its batches cut out of it; else each batch
    gathered on its own (no copy of the whole epoch in memory)."""
    x, y = _constant(split.x), _constant(split.y)
    n = len(split) - start * batch_size
    full = n // batch_size  # whole batches; then one shorter batch of the rest, if any

    @as_written
    def epoch(_):
        now = order.read_value()[start * batch_size:]
        if not whole_epoch:
            @as_written
            def batch(i):
                rows = now[i * batch_size:(i + 1) * batch_size]
                return _gather(x, rows), _gather(y, rows)

            return tf.data.Dataset.range(-(-n // batch_size)).map(batch)
        xs, ys = _gather(x, now), _gather(y, now)

        def batched(v):
            return tf.reshape(v[:full * batch_size], [full, batch_size, *v.shape[1:]])

        batches = tf.data.Dataset.from_tensor_slices((_map(xs, batched), _map(ys, batched)))
        if full * batch_size < n:
            rest = (_map(xs, lambda v: v[full * batch_size:]),
                    _map(ys, lambda v: v[full * batch_size:]))
            batches = batches.concatenate(tf.data.Dataset.from_tensors(rest))
        return batches

    return tf.data.Dataset.range(1).flat_map(epoch)


def train_dataset(split: Split, batch_size: int, seed: int, shuffle: bool, steps: int,
                  whole_epoch_bytes: int = WHOLE_EPOCH_BYTES, start: int = 0,
                  ) -> tuple[tf.data.Dataset, EpochOrder | None]:
    """One epoch of exactly `steps` batches, in the order the returned callback set; Keras
    iterates it afresh every epoch (fit is given `steps` as steps_per_epoch: the iterator
    Keras makes at an epoch's end serves the next epoch, whose order it reads at its first
    batch). `start`: the batches of the epoch already trained (a resume inside an epoch),
    left out."""
    if split.dataset is not None:
        return split.dataset.take(steps), None
    if split.table is not None:
        stream = StreamEpoch()
        batches = (_table_batches(split.table, batch_size, seed, shuffle, stream.epoch,
                                  start * batch_size).take(steps - start)
                   .apply(tf.data.experimental.assert_cardinality(steps - start))
                   .prefetch(tf.data.AUTOTUNE))
        return batches, stream
    keeper = EpochOrder(seed, len(split), shuffle)
    order = keeper.order
    rows = start * batch_size  # the epoch's samples already trained
    # The order is read when iteration starts, i.e. after on_epoch_begin, not when the
    # dataset is built.
    if not split.streamed:
        whole = _nbytes(split.x) + _nbytes(split.y) <= whole_epoch_bytes
        batches = _array_batches(split, batch_size, order, start, whole).take(steps - start)
    else:
        indices = tf.data.Dataset.range(1).flat_map(as_written(
            lambda _: tf.data.Dataset.from_tensor_slices(order.read_value()[rows:])))
        batches = _samples(split, indices, batch_size).take(steps - start)
    batches = (batches.apply(tf.data.experimental.assert_cardinality(steps - start))
               .prefetch(tf.data.AUTOTUNE))
    return (batches if split.streamed else _untuned(batches)), keeper


def _untuned(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Without tf.data's autotuning, for pipelines that only gather from memory: there is
    nothing to tune, and freeing an autotuned iterator waits for the tuning thread, which
    put 0.5 s after the last epoch of about one `fit` in three (measured on 2 cores)."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def eval_data(split: Split | None, batch_size: int) -> tuple[Any, dict[str, Any]]:
    """(data, fit/evaluate keyword arguments) for a split seen in file order."""
    if split is None:
        return None, {}
    if split.dataset is not None:
        return split.dataset, {}
    if split.table is not None:  # file order; its length known, as an array's is
        return (_table_batches(split.table, batch_size, 0, False, 0)
                .apply(tf.data.experimental.assert_cardinality(-(-len(split) // batch_size)))
                .prefetch(tf.data.AUTOTUNE)), {}
    if not split.streamed and not _has_text(split.x):
        # Arrays as Keras takes them, batched by Keras as it always was.
        return (split.x, split.y), {"batch_size": batch_size}
    # Keras's array adapter takes no numpy strings: text goes through tf.data as tf.string.
    indices = tf.data.Dataset.range(len(split))
    return _samples(split, indices, batch_size).prefetch(tf.data.AUTOTUNE), {}


def validation_data(split: Split | None, batch_size: int) -> tuple[Any, dict[str, Any]]:
    """(data, fit keyword arguments) for the validation split `fit` evaluates every epoch.

    In-memory arrays go in as a tf.data pipeline over tensors made once: given arrays,
    Keras rebuilds its slicing pipeline each epoch (~20 ms of a digits-size epoch, more
    than the validation's compute). Same batches, same order, and floats cast to floatx as
    Keras's array adapter does, so the metrics are the same.
    """
    if split is None or split.dataset is not None or split.streamed:
        return eval_data(split, batch_size)
    return _untuned(tf.data.Dataset.from_tensor_slices(
        (_constant(split.x, floatx=True), _constant(split.y, floatx=True))).batch(
            batch_size)), {}


def evaluate_split(model: Any, split: Split, batch_size: int,
                   callbacks: list | None = None) -> dict[str, float]:
    """model.evaluate on a split in file order: {metric name Keras logs: value}. An image
    that does not decode is a RunError naming it."""
    data, kwargs = eval_data(split, batch_size)
    if isinstance(data, tuple):
        kwargs["x"], kwargs["y"] = data
    else:
        kwargs["x"] = data
    with images_named([split]):
        logs = model.evaluate(verbose=0, return_dict=True, callbacks=callbacks, **kwargs)
    return {name: float(value) for name, value in logs.items()}


def _has_text(x: Any) -> bool:
    values = x.values() if isinstance(x, dict) else [x]
    return any(np.asarray(v).dtype.kind in "US" for v in values)


def train_steps(split: Split, batch_size: int, cap: int | None) -> int:
    if split.dataset is None:
        return batches_per_epoch(len(split), batch_size, cap)
    count = int(split.dataset.cardinality())
    if count > 0:
        return min(count, cap) if cap else count
    if cap:
        return cap
    raise ConfigError([Problem(loc=("data", "function"), message=(
        "the loader's training dataset has no known length (infinite, or filtered); return "
        "a finite dataset, or set fit.steps_per_epoch"))])
