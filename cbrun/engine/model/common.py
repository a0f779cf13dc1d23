"""What every model kind's builder shares: Keras's refusals as config errors, and layers
(keras.layers classes or keras.applications backbones) made from their specs."""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from typing import Any

import keras

from cbrun.config.model.layers import is_backbone
from cbrun.errors import ConfigError, Problem

Loc = tuple[Any, ...]


def keras_refused(loc: Loc, exc: Exception, what: str) -> ConfigError:
    # Keras styles its messages with terminal escape codes even when nobody is watching.
    plain = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()
    text = plain.splitlines()[0] if plain else type(exc).__name__
    return ConfigError([Problem(loc=loc, message=f"Keras refused {what}: {text}")])


def make_layer(kind: str, kwargs: dict[str, Any], loc: Loc,
               input_shape: tuple[Any, ...] | None) -> Any:
    """A layer; for a backbone, built for `input_shape` (the tensor it is applied to)."""
    if is_backbone(kind):
        return _backbone(kind, dict(kwargs), loc, input_shape)
    try:
        return getattr(keras.layers, kind)(**kwargs)
    except (TypeError, ValueError) as exc:
        raise keras_refused(loc, exc, f"this {kind}") from exc


def _backbone(kind: str, kwargs: dict[str, Any], loc: Loc,
              input_shape: tuple[Any, ...] | None) -> keras.Model:
    trainable = kwargs.pop("trainable", True)
    try:
        with _weights_from_cache(loc):
            model = getattr(keras.applications, kind)(input_shape=input_shape, **kwargs)
    except (TypeError, ValueError) as exc:
        raise keras_refused(loc, exc, f"this {kind}") from exc
    model.trainable = trainable
    return model


@contextmanager
def _weights_from_cache(loc: Loc):
    """Pretrained weights come from Keras's cache ($KERAS_HOME/models, by default
    ~/.keras/models); offline, Keras's download fails with a bare "URL fetch failure"
    traceback. Its applications fetch through file_utils.get_file, so wrapping that one
    function turns the failure into a message naming the file and the folder."""
    from keras.src.backend.config import keras_home
    from keras.src.utils import file_utils

    original = file_utils.get_file

    def get_file(fname=None, origin=None, *args, **kwargs):
        try:
            return original(fname, origin, *args, **kwargs)
        except Exception as exc:
            if not str(exc).startswith("URL fetch failure"):
                raise
            folder = os.path.join(kwargs.get("cache_dir") or keras_home(),
                                  kwargs.get("cache_subdir", "datasets"))
            name = fname or os.path.basename(origin or "")
            raise ConfigError([Problem(
                loc=(*loc, "weights"),
                message=f"the pretrained weights file {name} is not in Keras's cache "
                        f"({folder}) and downloading it failed ({exc}); put {name} (from "
                        f"{origin}) in {folder}, or set KERAS_HOME to a folder whose models/ "
                        f"holds it, or use weights: null")]) from None

    file_utils.get_file = get_file
    try:
        yield
    finally:
        file_utils.get_file = original
