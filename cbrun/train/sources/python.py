"""Your own loader: `function: module:name` called with `params`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cbrun.callbacks.imports import import_object
from cbrun.errors import ConfigError, Problem
from cbrun.train.sources import Split, Splits
from cbrun.train.sources.arrays import split_arrays

_LOC = ("data", "function")


def _fail(message: str) -> ConfigError:
    return ConfigError([Problem(loc=_LOC, message=message)])


def _import(target: str, folder: Path):
    function = import_object(folder, target, _LOC, "functions", callable)
    if not callable(function):
        raise _fail(f"{target} is {type(function).__name__}, not a function")
    return function


def _split(name: str, value: Any) -> Split:
    import tensorflow as tf

    if isinstance(value, tf.data.Dataset):
        return Split(dataset=value)
    if not (isinstance(value, (tuple, list)) and len(value) == 2):
        raise _fail(f"the loader's {name!r} must be (x, y) or a tf.data.Dataset, got "
                    f"{type(value).__name__}")

    def arrays(part):
        if isinstance(part, dict):
            return {str(k): np.asarray(v) for k, v in part.items()}
        return np.asarray(part)

    x, y = arrays(value[0]), arrays(value[1])
    lengths = {}
    for what, part in (("x", x), ("y", y)):
        for key, array in (part.items() if isinstance(part, dict) else [(None, part)]):
            label = what if key is None else f"{what}[{key!r}]"
            if array.ndim == 0:
                raise _fail(f"the loader's {name!r} {label} is a single value, not an array of "
                            "samples")
            lengths[label] = len(array)
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{label} {n}" for label, n in lengths.items())
        raise _fail(f"the loader's {name!r} arrays hold different numbers of samples ({shown})")
    return Split(x, y)


def load(cfg, config_dir: Path, *, seed: int) -> Splits:
    result = _import(cfg.function, config_dir)(**cfg.params)
    if not isinstance(result, dict) or "train" not in result:
        raise _fail(f"{cfg.function} must return a dict with 'train' (and optionally "
                    f"'validation', 'test'), got {type(result).__name__}")
    unknown = set(result) - {"train", "validation", "test"}
    if unknown:
        raise _fail(f"{cfg.function} returned unknown split(s) {sorted(unknown)}; the "
                    "splits are train, validation, test")
    parts = {k: _split(k, v) for k, v in result.items() if v is not None}
    train = parts["train"]
    for split in ("validation", "test"):
        if split in parts and getattr(cfg, f"{split}_split"):
            raise _fail(f"{cfg.function} returned a {split!r} split and {split}_split is set; "
                        f"use one or the other (the loader's {split} would be dropped)")
    if train.dataset is None:
        return split_arrays(cfg, train.x, train.y, parts.get("validation"), parts.get("test"),
                            seed=seed)
    if cfg.validation_split or cfg.test_split:
        raise _fail("validation_split and test_split cut arrays; a loader returning a "
                    "tf.data.Dataset returns its 'validation' and 'test' itself")
    return Splits(train, parts.get("validation"), parts.get("test"))
