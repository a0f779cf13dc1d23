"""A model loaded from a .keras file (`model: {path: start.keras}`), safe_mode on."""

from __future__ import annotations

from pathlib import Path

import keras

from cbrun.config.model.saved import SavedModel, first_line
from cbrun.errors import ConfigError, Problem


def _fail(message: str, key: str = "path") -> ConfigError:
    return ConfigError([Problem(loc=("model", key), message=message)])


def build_saved(cfg: SavedModel, config_dir: Path) -> keras.Model:
    path = config_dir / cfg.path
    if not path.is_file():
        raise _fail(f"no such file: {path} (path is relative to the config's folder)")
    try:
        # compile=False: the config's compile section is what trains it.
        model = keras.saving.load_model(path, compile=False, safe_mode=cfg.safe_mode)
    except ValueError as exc:
        if cfg.safe_mode and "safe_mode" in str(exc):
            raise _fail(f"{path.name} holds Python code that Keras would run to load it (a "
                        "Lambda layer), and cbrun loads models with safe_mode on; if you made "
                        "this file and trust it, write `safe_mode: false` under model:") from None
        raise _fail(f"Keras could not load {path}: {first_line(exc)}") from exc
    except Exception as exc:  # a damaged archive fails in many ways inside Keras
        raise _fail(f"Keras could not load {path}: {type(exc).__name__}: {first_line(exc)}"
                    ) from exc
    if not isinstance(model, keras.Model):
        raise _fail(f"{path.name} holds a {type(model).__name__}, not a model; save the "
                    "whole model (model.save('x.keras'))")
    return model
