"""cbrun: train Keras models from YAML files, with validated callbacks and exact resume.

The Python API (cbrun/api.py): `cbrun.train(config, overrides=...)`, `cbrun.resume(run_dir)`,
`cbrun.load_run(run_dir)`. This module stays light: importing it must never import
TensorFlow or Keras, so the API is imported when first used.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = ("train", "resume", "load_run", "Run")


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module("cbrun.api"), name)
    raise AttributeError(f"module 'cbrun' has no attribute {name!r}")
