"""A functional keras.Model from `model: {inputs, layers, outputs}`."""

from __future__ import annotations

from typing import Any

import keras

from cbrun.config.model.graph import GraphModel
from cbrun.engine.model.common import keras_refused, make_layer


def build_graph(cfg: GraphModel, name: str) -> keras.Model:
    tensors: dict[str, Any] = {
        key: keras.Input(shape=tuple(spec.shape), dtype=spec.dtype, name=key)
        for key, spec in cfg.inputs.items()}
    layers: dict[str, Any] = {}
    for index in cfg.order():  # the config checked that every name exists, without cycles
        node = cfg.layers[index]
        loc = ("model", "layers", index)
        if isinstance(node.inputs, str):
            args: Any = tensors[node.inputs]
        elif isinstance(node.inputs, list):
            args = [tensors[n] for n in node.inputs]
        else:
            args = {key: tensors[n] for key, n in node.inputs.items()}
        if node.shares is not None:
            layer = layers[node.shares]
        else:
            first = args if not isinstance(args, (list, dict)) else next(iter(
                args.values() if isinstance(args, dict) else args))
            layer = make_layer(node.type, {**node.kwargs, "name": node.name}, loc,
                               tuple(first.shape[1:]))
        layers[node.name] = layer
        try:
            tensors[node.name] = layer(**args) if isinstance(args, dict) else layer(args)
        except (TypeError, ValueError) as exc:
            raise keras_refused(loc, exc, f"layer {node.name!r} on {node.inputs}") from exc
    inputs = {key: tensors[key] for key in cfg.inputs}
    outputs = {key: tensors[key] for key in cfg.outputs}
    # One input or output is passed bare, so plain arrays feed it and its logs carry no
    # output prefix, as with a Sequential model.
    return keras.Model(
        inputs=next(iter(inputs.values())) if len(inputs) == 1 else inputs,
        outputs=next(iter(outputs.values())) if len(outputs) == 1 else outputs,
        name=name)
