"""cbrun: train Keras models from YAML files, with validated callbacks and exact resume.

The Python API (cbrun/api.py): `cbrun.train(config, overrides=...)`, `cbrun.resume(run_dir)`,
`cbrun.load_run(run_dir)`. This module stays light: importing it must never import
TensorFlow or Keras, so the API is imported when first used.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__version__ = "0.1.0"


class ApiModule(types.ModuleType):
    """A module of cbrun that is also an API function of the same name: Python sets
    `cbrun.train` to the package cbrun.train (and `cbrun.resume` to the module) as soon
    as it is imported, so calling the module calls cbrun.api's function."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        api = importlib.import_module("cbrun.api")
        return getattr(api, self.__name__.rpartition(".")[2])(*args, **kwargs)


def callable_module(name: str) -> None:
    """Make the module `name` (cbrun.train, cbrun.resume) answer calls as the API."""
    sys.modules[name].__class__ = ApiModule


def __getattr__(name: str) -> Any:
    if name in ("load_run", "Run"):
        return getattr(importlib.import_module("cbrun.api"), name)
    if name in ("train", "resume"):
        return importlib.import_module(f"cbrun.{name}")
    raise AttributeError(f"module 'cbrun' has no attribute {name!r}")
