"""A Sequential stack from `model: {input_shape, layers}`."""

from __future__ import annotations

import keras

from cbrun.config.model.stack import StackModel
from cbrun.train.model.common import is_backbone, keras_refused, make_layer


def mixed() -> bool:
    return keras.mixed_precision.global_policy().name.startswith("mixed")


def build_stack(cfg: StackModel, name: str) -> keras.Model:
    model = keras.Sequential(name=name)
    model.add(keras.Input(shape=tuple(cfg.input_shape), dtype=cfg.input_dtype))
    shape = tuple(cfg.input_shape)
    for index, spec in enumerate(cfg.layers):
        loc = ("model", "layers", index)
        kwargs = spec.kwargs
        last = index == len(cfg.layers) - 1
        if last and "dtype" not in kwargs and not is_backbone(spec.type) and mixed():
            # The output (a softmax, often) in float32: float16's few bits of precision and
            # small range would otherwise round probabilities near 0 and 1.
            kwargs = {**kwargs, "dtype": "float32"}
        layer = make_layer(spec.type, kwargs, loc, shape)
        try:
            model.add(layer)
        except (TypeError, ValueError) as exc:
            raise keras_refused(loc, exc, f"{spec.type} after the layers before it") from exc
        shape = tuple(model.outputs[0].shape[1:])
    return model
