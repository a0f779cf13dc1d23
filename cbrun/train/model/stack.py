"""A Sequential stack from `model: {input_shape, layers}`."""

from __future__ import annotations

import keras

from cbrun.config.model.stack import StackModel
from cbrun.train.model.common import keras_refused, make_layer


def build_stack(cfg: StackModel, name: str) -> keras.Model:
    model = keras.Sequential(name=name)
    model.add(keras.Input(shape=tuple(cfg.input_shape), dtype=cfg.input_dtype))
    shape = tuple(cfg.input_shape)
    for index, spec in enumerate(cfg.layers):
        loc = ("model", "layers", index)
        layer = make_layer(spec.type, spec.kwargs, loc, shape)
        try:
            model.add(layer)
        except (TypeError, ValueError) as exc:
            raise keras_refused(loc, exc, f"{spec.type} after the layers before it") from exc
        shape = tuple(model.outputs[0].shape[1:])
    return model
