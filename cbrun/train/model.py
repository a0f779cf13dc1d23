"""Build and compile the Keras model a config describes.

The config layer already checked layer names and keyword names; what only Keras can judge
(a value it refuses, shapes that do not chain) is caught here, before the first epoch, and
reported at the layer's position in the file.
"""

from __future__ import annotations

import re
from typing import Any

import keras

from cbrun.config.compile import ObjectSpec, OptimizerSpec
from cbrun.config.root import RunConfig
from cbrun.errors import ConfigError, Problem


def _fail(loc: tuple[Any, ...], exc: Exception, what: str) -> ConfigError:
    # Keras styles its messages with terminal escape codes even when nobody is watching.
    plain = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()
    text = plain.splitlines()[0] if plain else type(exc).__name__
    return ConfigError([Problem(loc=loc, message=f"Keras refused {what}: {text}")])


def build_model(config: RunConfig) -> keras.Model:
    model = keras.Sequential(name=config.name.replace(".", "_").replace("-", "_"))
    model.add(keras.Input(shape=tuple(config.model.input_shape)))
    for index, spec in enumerate(config.model.layers):
        loc = ("model", "layers", index)
        try:
            layer = getattr(keras.layers, spec.type)(**spec.kwargs)
        except (TypeError, ValueError) as exc:
            raise _fail(loc, exc, f"this {spec.type}") from exc
        try:
            model.add(layer)
        except (TypeError, ValueError) as exc:
            raise _fail(loc, exc, f"{spec.type} after the layers before it") from exc
    return model


def make_optimizer(config: RunConfig) -> keras.optimizers.Optimizer:
    spec: str | OptimizerSpec = config.compile.optimizer
    loc = ("compile", "optimizer")
    if isinstance(spec, str):
        return keras.optimizers.get(spec)
    try:
        return getattr(keras.optimizers, spec.type)(**spec.kwargs)
    except (TypeError, ValueError) as exc:
        raise _fail(loc, exc, f"this {spec.type}") from exc


def _object(value: str | ObjectSpec, module: Any, loc: tuple[Any, ...]) -> Any:
    if isinstance(value, str):
        return value
    try:
        return getattr(module, value.type)(**value.kwargs)
    except (TypeError, ValueError) as exc:
        raise _fail(loc, exc, f"this {value.type}") from exc


def compile_model(model: keras.Model, config: RunConfig, steps_per_execution: int) -> None:
    compile_cfg = config.compile
    metrics = [_object(m, keras.metrics, ("compile", "metrics", i))
               for i, m in enumerate(compile_cfg.metrics)]
    model.compile(
        optimizer=make_optimizer(config),
        loss=_object(compile_cfg.loss, keras.losses, ("compile", "loss")),
        metrics=metrics,
        steps_per_execution=steps_per_execution,
        jit_compile=compile_cfg.jit_compile,
    )
