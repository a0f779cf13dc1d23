"""The get/set protocol for callback state.

Keras's `on_train_begin` resets EarlyStopping, ReduceLROnPlateau and TensorBoard, and no
Keras callback can save what it has counted. For an exact resume cbrun records, for every
callback, the attributes that change during training, and puts them back after
`on_train_begin` has run. A custom callback joins by defining `get_state() -> dict` and
`set_state(dict)`; its values must be JSON-able or numpy arrays.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

# Attributes that change while training, per Keras class (read from keras/src/callbacks at
# Keras 3.15). A class missing here has no state worth keeping (TerminateOnNaN, the
# schedule of LearningRateScheduler, which is a function of the epoch).
STATE_ATTRS: dict[type, tuple[str, ...]] = {
    keras.callbacks.EarlyStopping: ("wait", "stopped_epoch", "best", "best_weights",
                                    "best_epoch"),
    keras.callbacks.ReduceLROnPlateau: ("wait", "cooldown_counter", "best"),
    keras.callbacks.ModelCheckpoint: ("best", "_batches_seen_since_last_saving",
                                      "_last_batch_seen", "_current_epoch"),
    keras.callbacks.TensorBoard: ("_global_train_batch", "_global_test_batch"),
    keras.callbacks.CSVLogger: ("keys",),
}


def _attrs_for(callback: Any) -> tuple[str, ...] | None:
    for klass in type(callback).__mro__:
        if klass in STATE_ATTRS:
            return STATE_ATTRS[klass]
    return None


def has_protocol(callback: Any) -> bool:
    return callable(getattr(callback, "get_state", None)) and callable(
        getattr(callback, "set_state", None))


def get_state(callback: Any) -> dict[str, Any] | None:
    """The callback's mutable state, or None if it keeps none that cbrun knows of."""
    if has_protocol(callback):
        return dict(callback.get_state())
    attrs = _attrs_for(callback)
    if attrs is None:
        return None
    return {name: _plain(getattr(callback, name, None)) for name in attrs}


def set_state(callback: Any, state: dict[str, Any]) -> None:
    if has_protocol(callback):
        callback.set_state(state)
        return
    for name, value in state.items():
        setattr(callback, name, value)


def _plain(value: Any) -> Any:
    """numpy scalars and tensors to Python numbers; lists of weights to numpy arrays."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) if not hasattr(v, "shape") or np.ndim(v) == 0 else np.asarray(v)
                for v in value]
    if hasattr(value, "numpy"):
        array = np.asarray(value.numpy())
        return array.item() if array.ndim == 0 else array
    return value
