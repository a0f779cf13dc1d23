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
    if train.table is not None:  # read a window at a time, as the epochs read it
        return eval_data(train, batch_size)[0].map(lambda x, y: pick(y))
    y = train.y[output] if isinstance(train.y, dict) and output in train.y else train.y
    y = np.asarray(y, dtype=np.float32)
    return tf.data.Dataset.from_tensor_slices(y.reshape(len(y), -1)).batch(batch_size)


def _stack_feeds(model: keras.Model, config: Any, inputs,
                 done: set[int] = frozenset()) -> list[tuple[Any, Any]]:
    """A stack's layer i sees what layers 0..i-1 make of the inputs."""
    layers = model.layers  # a Sequential's layers, in the config's order
    feeds = []
    for index, spec in enumerate(config.model.layers):
        if spec.adapt is not True or index in done:
            continue
        before = layers[:index]
        feed = inputs
        if before:
            prefix = keras.Sequential(before)
            feed = inputs.map(lambda x, p=prefix: p(x, training=False))
        feeds.append((layers[index], feed))
    return feeds


def _graph_feeds(model: keras.Model, config: Any, inputs,
                 done: set[int] = frozenset()) -> list[tuple[Any, Any]]:
    """A graph's layer sees its own input: a model input as it is, or what the layers
    before it make of the model's inputs."""
    feeds = []
    for index in config.model.order():  # a layer is adapted after those it depends on
        node = config.model.layers[index]
        if node.adapt is not True or index in done:
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


# ---------------------------------------------------------------- set from a table's pass

def _fed_columns(config: Any, index: int, groups: Any) -> list[str] | None:
    """The table columns that reach adapted layer `index` unchanged (a model input, or a
    Concatenate of model inputs), in order; None where layers before it change them."""
    model = config.model
    if config.model.kind == "stack":
        return list(groups) if index == 0 and isinstance(groups, list) else None

    def of_input(name: str) -> list[str] | None:
        if isinstance(groups, dict):
            return groups.get(name)
        return list(groups) if len(model.inputs) == 1 and name in model.inputs else None

    node = model.layers[index]
    if isinstance(node.inputs, str) and node.inputs in model.inputs:
        return of_input(node.inputs)
    before = next((n for n in model.layers if isinstance(node.inputs, str)
                   and n.name == node.inputs), None)
    if before is None or before.type != "Concatenate" or \
            before.kwargs.get("axis", -1) not in (-1, 1) or not isinstance(before.inputs, list):
        return None
    parts = [of_input(name) if name in model.inputs else None for name in before.inputs]
    return None if any(p is None for p in parts) else [c for p in parts for c in p]


def _set_normalization(layer: Any, columns: list[str], stats: dict) -> bool:
    numbers = stats.get("numbers", {})
    if type(layer).__name__ != "Normalization" or layer.invert or \
            layer.input_mean is not None or tuple(layer.axis) not in ((-1,), (1,)) or \
            not all(c in numbers for c in columns) or \
            tuple(layer.adapt_mean.shape) != (len(columns),):
        return False
    layer.adapt_mean.assign(np.array([numbers[c]["mean"] for c in columns], np.float32))
    layer.adapt_variance.assign(np.array([numbers[c]["variance"] for c in columns],
                                         np.float32))
    layer.finalize_state()
    return True


def _set_lookup(layer: Any, columns: list[str], stats: dict) -> bool:
    from cbrun.data.learn import ranked

    if type(layer).__name__ != "StringLookup" or len(columns) != 1 or layer.invert or \
            layer.output_mode == "tf_idf" or layer.input_vocabulary is not None:
        return False
    values = ranked(stats, columns[0])
    if values is None:
        return False
    special = {layer.mask_token, layer.oov_token}
    tokens = [value for value, _ in values if value not in special]
    if layer.max_tokens:
        tokens = tokens[:layer.max_tokens - layer._token_start_index()]
    if not tokens:
        return False
    layer.set_vocabulary(tokens)
    return True


def _set_words(layer: Any, columns: list[str], stats: dict) -> bool:
    """A TextVectorization of one text column with its default standardize and split, no
    n-grams and no tf-idf, set from the pass's word counts (cbrun/data/learn.words): its
    `max_tokens` most frequent words, as adapt keeps them."""
    from cbrun.data.learn import ranked

    if type(layer).__name__ != "TextVectorization" or len(columns) != 1 or \
            layer._standardize != "lower_and_strip_punctuation" or \
            layer._split != "whitespace" or layer._ngrams is not None or \
            layer._output_mode == "tf_idf" or layer._has_input_vocabulary:
        return False
    lookup = layer._lookup_layer
    room = layer._max_tokens - lookup._token_start_index() if layer._max_tokens else None
    values = ranked(stats, columns[0], room, kind="words")
    if values is None:
        return False
    tokens = [value for value, _ in values if value not in (lookup.mask_token,
                                                            lookup.oov_token)][:room]
    if not tokens:
        return False
    layer.set_vocabulary(tokens)
    return True


def _set_from_stats(model: keras.Model, config: Any, stats: dict | None) -> set[int]:
    """The adapted layers set from what a table's pass learned (Normalization: each
    column's mean and variance; StringLookup: its values by frequency, as adapt orders
    them; TextVectorization: its words by frequency) rather than adapted over the rows: the same for a table streamed or in memory,
    and no second pass. Returns the indices of the layers set."""
    if not stats or "features" not in stats:
        return set()
    done = set()
    kind = config.model.kind
    for index, spec in enumerate(config.model.layers):
        if spec.adapt is not True:
            continue
        columns = _fed_columns(config, index, stats["features"])
        if columns is None:
            continue
        layer = model.layers[index] if kind == "stack" else model.get_layer(spec.name)
        if _set_normalization(layer, columns, stats) or _set_lookup(layer, columns, stats) \
                or _set_words(layer, columns, stats):
            done.add(index)
    return done


def adapt_layers(model: keras.Model, config: Any, train: Split) -> None:
    kind = getattr(config.model, "kind", "stack")
    if kind not in ("stack", "graph") or not any(
            getattr(spec, "adapt", False) for spec in config.model.layers):
        return
    done = _set_from_stats(model, config, train.stats)
    if all(spec.adapt is not True or index in done
           for index, spec in enumerate(config.model.layers)):
        feeds = []
    else:
        inputs = _inputs(train, config.data.batch_size)
        feeds = (_stack_feeds if kind == "stack" else _graph_feeds)(model, config, inputs,
                                                                    done)
    for layer, feed in [*feeds, *_target_feeds(model, config, train)]:
        layer.adapt(feed)
