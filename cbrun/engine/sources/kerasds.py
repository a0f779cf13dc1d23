"""keras.datasets, loaded by Keras from its cache ($KERAS_HOME/datasets/)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cbrun.config.data.kerasds import CACHE_FILES
from cbrun.engine.sources import Split, Splits
from cbrun.engine.sources.arrays import split_arrays
from cbrun.errors import ConfigError, Problem


def cache_folder() -> Path:
    import keras

    return Path(os.path.expanduser(keras.config.keras_home() if hasattr(keras.config, "keras_home")
                                   else os.environ.get("KERAS_HOME", "~/.keras"))) / "datasets"


def _offline(cfg, exc: Exception) -> ConfigError:
    """At the config's `name:` line: nothing trained, so no run directory is kept."""
    folder = cache_folder()
    files = "\n".join(f"  {folder / name}" for name in CACHE_FILES[cfg.name])
    return ConfigError([Problem(loc=("data", "name"), message=
        f"keras.datasets.{cfg.name} could not download its data ({exc}).\n"
        f"Keras looks for:\n{files}\n"
        f"Put the file{'s' if len(CACHE_FILES[cfg.name]) > 1 else ''} there (copied from a "
        "machine that has it, or downloaded from the URL above), or set KERAS_HOME to the "
        "folder above `datasets/`. Keras checks each file's hash and downloads again when it "
        "does not match, so the file must be the original.")])


def load(cfg, config_dir: Path, *, seed: int) -> Splits:
    import keras

    module = getattr(keras.datasets, cfg.name)
    kwargs = {}
    if cfg.num_words:
        kwargs["num_words"] = cfg.num_words
    try:
        (x, y), (x_test, y_test) = module.load_data(**kwargs)
    except Exception as exc:
        if "URL fetch failure" not in str(exc):
            raise
        raise _offline(cfg, exc) from None
    if cfg.maxlen:
        x = keras.utils.pad_sequences(x, maxlen=cfg.maxlen)
        x_test = keras.utils.pad_sequences(x_test, maxlen=cfg.maxlen)
    x = np.asarray(x)
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y, y_test = y[:, 0], np.asarray(y_test)[:, 0]
    test = Split(np.asarray(x_test), np.asarray(y_test)) if cfg.test else None
    return split_arrays(cfg, x, y, test=test, seed=seed)
