"""A Sequential stack from `model: {input_shape, layers}`."""

from __future__ import annotations

import keras

from cbrun.config.model.stack import StackModel
from cbrun.engine.model.common import is_backbone, keras_refused, make_layer


def mixed() -> bool:
    return keras.mixed_precision.global_policy().name.startswith("mixed")


def build_stack(cfg: StackModel, name: str) -> keras.Model:
    if not any(is_backbone(spec.type) for spec in cfg.layers):
        # Keras rebuilds a Sequential after every `add`; built in one go instead (~0.05 s
        # for a few layers). Where Keras refuses the stack, the layer-by-layer build below
        # finds which layer it is.
        layers = [make_layer(spec.type, _kwargs(cfg, index), ("model", "layers", index), None)
                  for index, spec in enumerate(cfg.layers)]
        try:
            return keras.Sequential(
                [keras.Input(shape=tuple(cfg.input_shape), dtype=cfg.input_dtype), *layers],
                name=name)
        except (TypeError, ValueError):
            pass
    model = keras.Sequential(name=name)
    model.add(keras.Input(shape=tuple(cfg.input_shape), dtype=cfg.input_dtype))
    shape = tuple(cfg.input_shape)
    for index, spec in enumerate(cfg.layers):
        loc = ("model", "layers", index)
        layer = make_layer(spec.type, _kwargs(cfg, index), loc, shape)
        try:
            model.add(layer)
        except (TypeError, ValueError) as exc:
            raise keras_refused(loc, exc, f"{spec.type} after the layers before it") from exc
        shape = tuple(model.outputs[0].shape[1:])
    return model


def _kwargs(cfg: StackModel, index: int) -> dict:
    spec = cfg.layers[index]
    if (index == len(cfg.layers) - 1 and "dtype" not in spec.kwargs
            and not is_backbone(spec.type) and mixed()):
        # The output (a softmax, often) in float32: float16's few bits of precision and
        # small range would otherwise round probabilities near 0 and 1.
        return {**spec.kwargs, "dtype": "float32"}
    return spec.kwargs
