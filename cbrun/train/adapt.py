"""Adapting the `adapt: true` preprocessing layers on the training split, in file order,
before the first epoch (and again, identically, when a run resumes: same split, same
order, same result; the restored weights then overwrite it with equal values)."""

from __future__ import annotations

from typing import Any

import keras

from cbrun.train.data import eval_data
from cbrun.train.sources import Split


def adapt_layers(model: keras.Model, config: Any, train: Split) -> None:
    specs = [(i, spec) for i, spec in enumerate(config.model.layers) if spec.adapt]
    if not specs:
        return
    data, kwargs = eval_data(train, config.data.batch_size)
    if isinstance(data, tuple):  # arrays: a dataset of input batches
        import tensorflow as tf

        inputs = tf.data.Dataset.from_tensor_slices(data[0]).batch(kwargs["batch_size"])
    else:
        inputs = data.map(lambda x, y: x)
    layers = model.layers  # a Sequential's layers, in the config's order
    for index, spec in specs:
        layer = layers[index]
        before = layers[:index]
        feed = inputs
        if before:
            prefix = keras.Sequential(before)
            feed = inputs.map(lambda x, p=prefix: p(x, training=False))
        layer.adapt(feed)
