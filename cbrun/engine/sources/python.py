"""Your own loader: `function: module:name` called with `params`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cbrun.callbacks.imports import import_object
from cbrun.engine.sources import Split, Splits
from cbrun.engine.sources.arrays import split_arrays
from cbrun.errors import ConfigError, Problem

_LOC = ("data", "function")


def _fail(message: str) -> ConfigError:
    return ConfigError([Problem(loc=_LOC, message=message)])


def _import(target: str, folder: Path):
    function = import_object(folder, target, _LOC, "functions", callable)
    if not callable(function):
        raise _fail(f"{target} is {type(function).__name__}, not a function")
    return function


def _dataset(name: str, value: Any, function: str) -> Split:
    """A dataset must yield (x, y) or (x, y, sample_weight) batches, and validation and test
    must end: Keras evaluates them to their end, every epoch and after training."""
    import tensorflow as tf

    spec = value.element_spec
    if not (isinstance(spec, tuple) and len(spec) in (2, 3)):
        alone = "" if isinstance(spec, tuple) else \
            ": a dataset of inputs alone has no labels to train or evaluate on"
        raise _fail(f"{function} returned a {name!r} dataset whose elements are "
                    f"{_described(spec)}, not (x, y) batches{alone}")
    if name != "train" and value.cardinality() == tf.data.INFINITE_CARDINALITY:
        raise _fail(f"{function} returned a {name!r} dataset that never ends (a .repeat()?); "
                    f"Keras evaluates the {name} split to its end, so it must be finite")
    return Split(dataset=value)


def _described(spec: Any) -> str:
    if isinstance(spec, dict):
        return f"a dict ({', '.join(map(str, spec))})"
    if isinstance(spec, (tuple, list)):
        return f"tuples of {len(spec)}"
    return "single tensors"


def _arrays(name: str, what: str, part: Any, function: str):
    """x or y as arrays ({name: array} for a dict), or one line on what they are instead."""
    if part is None:
        raise _fail(f"{function} returned None as the {name!r} {what}; give an array of "
                    "samples")
    if isinstance(part, dict):
        return {str(k): _array(name, f"{what}[{k!r}]", v, function) for k, v in part.items()}
    return _array(name, what, part, function)


def _array(name: str, what: str, value: Any, function: str) -> np.ndarray:
    try:
        array = np.asarray(value)
    except ValueError:  # numpy refuses rows of different lengths
        raise _fail(f"{function} returned a ragged {name!r} {what} (rows of different "
                    "lengths or shapes); pad them to one shape, or return a "
                    "tf.data.Dataset") from None
    if array.dtype == object:
        raise _fail(f"{function} returned a {name!r} {what} of Python objects (None, or "
                    "values of mixed kinds); give numbers or strings of one kind")
    return array


def _split(name: str, value: Any, function: str) -> Split:
    import tensorflow as tf

    if isinstance(value, tf.data.Dataset):
        return _dataset(name, value, function)
    if not (isinstance(value, (tuple, list)) and len(value) == 2):
        raise _fail(f"the loader's {name!r} must be (x, y) or a tf.data.Dataset, got "
                    f"{_kind(value)}")
    x, y = (_arrays(name, what, part, function) for what, part in zip("xy", value))
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


def _kind(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}"
    return type(value).__name__


def load(cfg, config_dir: Path, *, seed: int) -> Splits:
    function = _import(cfg.function, config_dir)
    try:
        result = function(**cfg.params)
    except Exception as exc:  # the loader's own failure: one line (--debug shows where)
        text = str(exc).strip().splitlines()
        raise _fail(f"{cfg.function}(**params) raised {type(exc).__name__}"
                    f"{': ' + text[0] if text else ''}") from exc
    if not isinstance(result, dict) or "train" not in result:
        raise _fail(f"{cfg.function} must return a dict with 'train' (and optionally "
                    f"'validation', 'test'), got {type(result).__name__}")
    unknown = set(result) - {"train", "validation", "test"}
    if unknown:
        raise _fail(f"{cfg.function} returned unknown split(s) {sorted(unknown)}; the "
                    "splits are train, validation, test")
    if result["train"] is None:
        raise _fail(f"{cfg.function} returned None for 'train'; the training split is "
                    "required: (x, y) or a tf.data.Dataset")
    # None for validation or test means none, as leaving the key out does.
    parts = {k: _split(k, v, cfg.function) for k, v in result.items() if v is not None}
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
