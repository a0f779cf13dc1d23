"""What a warm sweep worker (cbrun/sweep/worker.py) holds between its trials, and puts
back after each: every setting `keras.config` can change (floatx, epsilon, the image data
format, the dtype policy, max_epochs, the on/off switches), as the worker's TensorFlow
import found them, and a Keras session with nothing of the last trial in it.

A trial's session sets what it needs itself (engine/session.py: clear_session, the seeds,
its dtype policy, given back after); this is the worker's own guarantee that the next trial
starts from what a fresh process would have, whatever the last one changed.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import keras

# Switched by enable_X / disable_X and read by is_X_enabled.
_SWITCHES = ("interactive_logging", "traceback_filtering", "flash_attention")


def _settings() -> dict[str, tuple[Callable[[], Any], Callable[[Any], Any]]]:
    """name -> (read, write) for each setting keras.config both reads and sets (not the
    backend, which is the process's for good)."""
    config = keras.config
    found = {name: (getattr(config, name), getattr(config, f"set_{name}"))
             for name in dir(config)
             if not name.startswith("_") and name != "backend"
             and callable(getattr(config, f"set_{name}", None))}
    for name in _SWITCHES:
        if hasattr(config, f"is_{name}_enabled"):
            found[name] = (getattr(config, f"is_{name}_enabled"),
                           lambda on, name=name: getattr(
                               config, f"{'enable' if on else 'disable'}_{name}")())
    return found


def keras_settings() -> dict[str, Any]:
    """The values to put back after each trial: read once, right after the import."""
    return {name: read() for name, (read, _) in _settings().items()}


def put_back(settings: dict[str, Any]) -> None:
    """The last trial's Keras session and objects freed, and the settings as they were;
    what is left (modules its trial imported) frozen out of later collections' sight, as
    TensorFlow's import is."""
    keras.backend.clear_session(free_memory=True)
    for name, (read, write) in _settings().items():
        # Written only where it differs: clear_session already put back what Keras keeps
        # in its global state (the dtype policy, flash attention's "not chosen").
        if name in settings and read() != settings[name]:
            write(settings[name])
    gc.freeze()
