"""Build and compile the Keras model a config describes: one module per model kind.

The config layer already checked names, keyword names and the graph; what only Keras can
judge (a value it refuses, shapes that do not chain) is caught here, before the first epoch,
and reported at the layer's position in the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras

from cbrun.config.compile import ObjectSpec, OptimizerSpec
from cbrun.config.root import RunConfig
from cbrun.engine.model.common import keras_refused
from cbrun.engine.model.factory import build_factory
from cbrun.engine.model.graph import build_graph
from cbrun.engine.model.saved import build_saved
from cbrun.engine.model.stack import build_stack


def build_model(config: RunConfig, config_dir: Path) -> keras.Model:
    name = config.name.replace(".", "_").replace("-", "_")
    kind = config.model.kind
    if kind == "stack":
        return build_stack(config.model, name)
    if kind == "graph":
        return build_graph(config.model, name)
    if kind == "factory":
        return build_factory(config.model, config_dir)
    return build_saved(config.model, config_dir)


def make_optimizer(config: RunConfig) -> keras.optimizers.Optimizer:
    spec: str | OptimizerSpec = config.compile.optimizer
    loc = ("compile", "optimizer")
    if isinstance(spec, str):
        return keras.optimizers.get(spec)
    try:
        return getattr(keras.optimizers, spec.type)(**spec.kwargs)
    except (TypeError, ValueError) as exc:
        raise keras_refused(loc, exc, f"this {spec.type}") from exc


def _object(value: str | ObjectSpec, module: Any, loc: tuple[Any, ...]) -> Any:
    if isinstance(value, str):
        return value
    try:
        return getattr(module, value.type)(**value.kwargs)
    except (TypeError, ValueError) as exc:
        raise keras_refused(loc, exc, f"this {value.type}") from exc


def _per_output(value: Any, make, loc: tuple[Any, ...], single: bool) -> Any:
    """Keras takes one value for a model with one output, a dict by name for several."""
    if not isinstance(value, dict):
        return make(value, loc)
    built = {key: make(item, (*loc, key)) for key, item in value.items()}
    return next(iter(built.values())) if single and len(built) == 1 else built


def compile_model(model: keras.Model, config: RunConfig, steps_per_execution: int) -> None:
    cfg = config.compile
    single = len(model.outputs) == 1

    def loss(value, loc):
        return _object(value, keras.losses, loc)

    def metrics(items, loc):
        return [_object(m, keras.metrics, (*loc, i)) for i, m in enumerate(items)]

    weights = cfg.loss_weights
    if weights is not None and not single:
        weights = {name: weights.get(name, 1.0) for name in cfg.output_names() or []}
    model.compile(
        optimizer=make_optimizer(config),
        loss=_per_output(cfg.loss, loss, ("compile", "loss"), single),
        metrics=_per_output(cfg.metrics, metrics, ("compile", "metrics"), single),
        loss_weights=None if single else weights,
        steps_per_execution=steps_per_execution,
        jit_compile=cfg.jit_compile,
    )
