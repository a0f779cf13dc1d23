"""Adapting the `adapt: true` preprocessing layers on the training split, in file order,
before the first epoch (and again, identically, when a run resumes: same split, same
order, same result; the restored weights then overwrite it with equal values).

`adapt: targets` (a Normalization with invert: true at an output) adapts on that output's
training targets instead: the network then learns targets of mean 0 and variance 1, and
the layer maps its output back to the data's units."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from cbrun.engine.data import eval_data
from cbrun.engine.sources import Split


def _inputs(train: Split, batch_size: int):
    """The training split's inputs, batched, without labels."""
    data, kwargs = eval_data(train, batch_size)
    if isinstance(data, tuple):  # arrays: a dataset of input batches
        import tensorflow as tf

        return tf.data.Dataset.from_tensor_slices(data[0]).batch(kwargs["batch_size"])
    return data.map(lambda x, y: x)


def _targets(train: Split, batch_size: int, output: str | None):
    """The training split's targets for `output` (None: the only one), batched, each a row
    of the output's width (a 1-D target becomes one column)."""
    import tensorflow as tf

    def pick(y):
        y = y[output] if isinstance(y, dict) and output in y else y
        return tf.reshape(y, (-1, 1)) if len(y.shape) == 1 else y

    if train.dataset is not None:
        return train.dataset.map(lambda x, y: pick(y))
    y = train.y[output] if isinstance(train.y, dict) and output in train.y else train.y
    y = np.asarray(y, dtype=np.float32)
    return tf.data.Dataset.from_tensor_slices(y.reshape(len(y), -1)).batch(batch_size)


def _stack_feeds(model: keras.Model, config: Any, inputs) -> list[tuple[Any, Any]]:
    """A stack's layer i sees what layers 0..i-1 make of the inputs."""
    layers = model.layers  # a Sequential's layers, in the config's order
    feeds = []
    for index, spec in enumerate(config.model.layers):
        if spec.adapt is not True:
            continue
        before = layers[:index]
        feed = inputs
        if before:
            prefix = keras.Sequential(before)
            feed = inputs.map(lambda x, p=prefix: p(x, training=False))
        feeds.append((layers[index], feed))
    return feeds


def _graph_feeds(model: keras.Model, config: Any, inputs) -> list[tuple[Any, Any]]:
    """A graph's layer sees its own input: a model input as it is, or what the layers
    before it make of the model's inputs."""
    feeds = []
    for index in config.model.order():  # a layer is adapted after those it depends on
        node = config.model.layers[index]
        if node.adapt is not True:
            continue
        layer = model.get_layer(node.name)
        if isinstance(node.inputs, str) and node.inputs in config.model.inputs:
            name = node.inputs
            feed = inputs.map(lambda x, n=name: x[n] if isinstance(x, dict) else x)
        else:
            prefix = keras.Model(model.input, layer.input)
            feed = inputs.map(lambda x, p=prefix: p(x, training=False))
        feeds.append((layer, feed))
    return feeds


def _target_feeds(model: keras.Model, config: Any, train: Split) -> list[tuple[Any, Any]]:
    batch = config.data.batch_size
    if config.model.kind == "stack":
        last = config.model.layers[-1]
        return [(model.layers[-1], _targets(train, batch, None))] if \
            last.adapt == "targets" else []
    return [(model.get_layer(node.name), _targets(train, batch, node.name))
            for node in config.model.layers if node.adapt == "targets"]


def adapt_layers(model: keras.Model, config: Any, train: Split) -> None:
    kind = getattr(config.model, "kind", "stack")
    if kind not in ("stack", "graph") or not any(
            getattr(spec, "adapt", False) for spec in config.model.layers):
        return
    inputs = _inputs(train, config.data.batch_size)
    feeds = (_stack_feeds if kind == "stack" else _graph_feeds)(model, config, inputs)
    for layer, feed in [*feeds, *_target_feeds(model, config, train)]:
        layer.adapt(feed)
