"""A keras.Model returned by the user's function (`model: {factory: mod:function}`)."""

from __future__ import annotations

from pathlib import Path

import keras

from cbrun.callbacks.imports import import_object
from cbrun.config.model.factory import FactoryModel
from cbrun.errors import ConfigError, Problem


def _fail(message: str) -> ConfigError:
    return ConfigError([Problem(loc=("model", "factory"), message=message)])


def build_factory(cfg: FactoryModel, config_dir: Path) -> keras.Model:
    function = import_object(config_dir, cfg.factory, ("model", "factory"), "functions",
                             callable)
    if not callable(function):
        raise _fail(f"{cfg.factory} is {type(function).__name__}, not a function")
    try:
        model = function(**cfg.params)
    except TypeError as exc:
        raise _fail(f"{cfg.factory}(**params) failed: {exc}") from exc
    if not isinstance(model, keras.Model):
        raise _fail(f"{cfg.factory} returned {type(model).__name__}, not a keras.Model")
    return model
