"""A keras.Model returned by the user's function (`model: {factory: mod:function}`)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import keras

from cbrun.config.model.factory import FactoryModel
from cbrun.errors import ConfigError, Problem


def _fail(message: str) -> ConfigError:
    return ConfigError([Problem(loc=("model", "factory"), message=message)])


def build_factory(cfg: FactoryModel, config_dir: Path) -> keras.Model:
    module_name, _, attr = cfg.factory.partition(":")
    folder = str(config_dir.resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name or module_name.startswith(f"{exc.name}."):
            raise _fail(f"no module named {module_name!r}: looked in the config's folder "
                        f"{folder} and on the Python path") from exc
        raise _fail(f"importing {module_name!r} failed: {exc}") from exc
    except Exception as exc:  # the user's module raised while loading
        raise _fail(f"importing {module_name!r} failed: {type(exc).__name__}: {exc}") from exc
    function = getattr(module, attr, None)
    if not callable(function):
        found = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")]
        raise _fail(f"module {module_name!r} has no function {attr!r}; it has: "
                    f"{', '.join(found) or 'none'}")
    try:
        model = function(**cfg.params)
    except TypeError as exc:
        raise _fail(f"{cfg.factory}(**params) failed: {exc}") from exc
    if not isinstance(model, keras.Model):
        raise _fail(f"{cfg.factory} returned {type(model).__name__}, not a keras.Model")
    return model
