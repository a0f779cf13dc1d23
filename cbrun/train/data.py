"""Arrays in, a tf.data pipeline out, with the data order a pure function of (seed, epoch).

Keras shuffles numpy inputs with TensorFlow's stateful random ops, so a process that
restarts at epoch k draws a different order than the uninterrupted run did. cbrun draws
epoch k's order from numpy.random.default_rng([seed, k]) instead: a restart changes nothing.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from cbrun.config.data import DataConfig
from cbrun.errors import ConfigError, Problem


@dataclass
class Arrays:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray | None
    y_val: np.ndarray | None

    @property
    def validation(self) -> tuple[np.ndarray, np.ndarray] | None:
        return None if self.x_val is None else (self.x_val, self.y_val)


def _read_npz(path: Path, cfg: DataConfig, field: str) -> tuple[np.ndarray, np.ndarray]:
    def bad(message: str) -> ConfigError:
        return ConfigError([Problem(loc=("data", field), message=message, given=str(path))])

    if not path.is_file():
        raise bad(f"no such file: {path}")
    if not zipfile.is_zipfile(path):
        raise bad(f"{path} is not a .npz archive (numpy.savez writes one, with an array "
                  f"under {cfg.x_key!r} and one under {cfg.y_key!r})")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in (cfg.x_key, cfg.y_key) if k not in archive.files]
            if missing:
                raise bad(f"{path.name} has no array {missing[0]!r}; it has: "
                          f"{', '.join(archive.files)} (set data.x_key / data.y_key)")
            x, y = archive[cfg.x_key], archive[cfg.y_key]
    except (ValueError, OSError) as exc:
        raise bad(f"cannot read {path} as .npz: {exc}") from None
    if len(x) != len(y):
        raise bad(f"{cfg.x_key} has {len(x)} samples but {cfg.y_key} has {len(y)}")
    return x, y


def load_arrays(cfg: DataConfig, config_dir: Path) -> Arrays:
    if cfg.source == "digits":
        source = resources.files("cbrun.datasets").joinpath("digits.npz")
        with source.open("rb") as handle, np.load(handle) as archive:
            x = archive["x"].astype("float32")
            y = archive["y"].astype("int32")
    else:
        x, y = _read_npz(config_dir / cfg.path, cfg, "path")
    x_val = y_val = None
    if cfg.validation_path:
        x_val, y_val = _read_npz(config_dir / cfg.validation_path, cfg, "validation_path")
    elif cfg.validation_split:
        # Like Keras: the last fraction, taken before any shuffling.
        cut = int(len(x) * (1.0 - cfg.validation_split))
        x, x_val, y, y_val = x[:cut], x[cut:], y[:cut], y[cut:]
    if len(x) == 0:
        raise ConfigError([Problem(loc=("data",), message="no training samples are left")])
    return Arrays(x, y, x_val, y_val)


SPARSE_LOSSES = {"sparse_categorical_crossentropy", "SparseCategoricalCrossentropy"}
ONE_HOT_LOSSES = {"categorical_crossentropy", "CategoricalCrossentropy"}


def check_data_fits(config: Any, arrays: Arrays, model: Any) -> None:
    """The classic mismatches, caught before the first batch with a message, not a Keras
    traceback from inside the compiled step."""
    problems: list[Problem] = []
    expected = tuple(config.model.input_shape)
    units = model.output_shape[-1]
    loss = config.compile.loss if isinstance(config.compile.loss, str) else config.compile.loss.type
    parts = [("training", arrays.x_train, arrays.y_train)]
    if arrays.x_val is not None:
        parts.append(("validation", arrays.x_val, arrays.y_val))
    for which, x, y in parts:
        if x.dtype.kind not in "biuf":
            problems.append(Problem(loc=("data",), message=f"the {which} inputs are "
                                    f"{x.dtype} values; a model needs numbers"))
        elif tuple(x.shape[1:]) != expected:
            problems.append(Problem(
                loc=("model", "input_shape"), given=list(expected),
                message=f"the {which} samples have shape {list(x.shape[1:])}, but the model "
                        f"expects input_shape {list(expected)}"))
        if y.dtype.kind not in "biuf":
            problems.append(Problem(loc=("data",), message=f"the {which} labels are "
                                    f"{y.dtype} values; encode them as integers 0..n-1"))
            continue
        flat = y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1)
        if loss in SPARSE_LOSSES:
            if not flat:
                problems.append(Problem(
                    loc=("compile", "loss"), given=loss,
                    message=f"{loss} expects one class id per sample, but the {which} labels "
                            f"have shape {list(y.shape[1:])} (one-hot?); use "
                            "categorical_crossentropy for one-hot labels"))
            elif len(y) and (y.min() < 0 or y.max() >= units):
                problems.append(Problem(
                    loc=("model", "layers", len(config.model.layers) - 1),
                    message=f"the {which} labels run from {y.min()} to {y.max()}, but the "
                            f"last layer has {units} outputs (class ids must be 0..{units - 1})"))
        elif loss in ONE_HOT_LOSSES and flat and units > 1:
            problems.append(Problem(
                loc=("compile", "loss"), given=loss,
                message=f"{loss} expects one-hot labels of width {units}, but the {which} "
                        "labels are one class id per sample; use "
                        "sparse_categorical_crossentropy"))
    if problems:
        raise ConfigError(problems)


def epoch_order(seed: int, epoch: int, n: int, shuffle: bool) -> np.ndarray:
    if not shuffle:
        return np.arange(n, dtype=np.int64)
    return np.random.default_rng([seed, epoch]).permutation(n)


def batches_per_epoch(n: int, batch_size: int, cap: int | None) -> int:
    full = -(-n // batch_size)
    return min(full, cap) if cap else full


def train_dataset(arrays: Arrays, batch_size: int, seed: int, shuffle: bool,
                  first_epoch: int, epochs: int, steps_per_epoch: int):
    """Batches for epochs [first_epoch, epochs): exactly steps_per_epoch per epoch, so Keras's
    iterator (kept across epochs when steps_per_epoch is given) stays aligned with epochs.

    Every epoch's order is drawn up front (4 bytes per sample and epoch): a pipeline that
    called back into Python from tf.data's threads could crash the interpreter at exit."""
    import tensorflow as tf

    n = len(arrays.x_train)
    x = tf.constant(arrays.x_train)
    y = tf.constant(arrays.y_train)
    orders = np.stack([epoch_order(seed, epoch, n, shuffle).astype(np.int32)
                       for epoch in range(first_epoch, epochs)] or [np.zeros(n, np.int32)])
    per_epoch = tf.data.Dataset.from_tensor_slices(orders).take(max(0, epochs - first_epoch))
    return (per_epoch
            .flat_map(lambda order: tf.data.Dataset.from_tensor_slices(order)
                      .batch(batch_size).take(steps_per_epoch))
            .map(lambda idx: (tf.gather(x, idx), tf.gather(y, idx)),
                 num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .prefetch(tf.data.AUTOTUNE))
