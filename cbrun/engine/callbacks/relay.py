"""One training split over two `model.fit` calls, as the callbacks see it: a run resumed
from a state inside an epoch trains the rest of that epoch in a first fit (its data starts at
the batch the state was saved at) and the later epochs in a second.

Keras calls `on_train_begin` and `on_train_end` at every fit: EarlyStopping and
ReduceLROnPlateau reset what they counted, CSVLogger and TensorBoard close their files, and
EarlyStopping with restore_best_weights sets the best weights back. A Relay hands one
callback everything but the `on_train_end` of the first fit and the `on_train_begin` of the
second, and numbers the first fit's batches from where the epoch really is, so every
callback sees one uninterrupted training."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import keras


class Relay(keras.callbacks.Callback):
    def __init__(self, inner: Any, *, offset: int = 0, steps: int | None = None,
                 begin: bool = True, end: bool = True):
        super().__init__()
        self.inner, self.offset, self.steps = inner, offset, steps
        self.begin, self.end = begin, end

    def set_model(self, model):
        super().set_model(model)
        self.inner.set_model(model)

    def set_params(self, params):
        # The epoch's whole length, not what is left of it.
        params = {**params, "steps": self.steps} if self.steps else params
        super().set_params(params)
        self.inner.set_params(params)

    def on_train_begin(self, logs=None):
        if self.begin:
            self.inner.on_train_begin(logs)

    def on_train_end(self, logs=None):
        if self.end:
            self.inner.on_train_end(logs)

    def on_epoch_begin(self, epoch, logs=None):
        self.inner.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self.inner.on_epoch_end(epoch, logs)

    def on_train_batch_begin(self, batch, logs=None):
        self.inner.on_train_batch_begin(batch + self.offset, logs)

    def on_train_batch_end(self, batch, logs=None):
        self.inner.on_train_batch_end(batch + self.offset, logs)

    def on_test_begin(self, logs=None):
        self.inner.on_test_begin(logs)

    def on_test_end(self, logs=None):
        self.inner.on_test_end(logs)

    def on_test_batch_begin(self, batch, logs=None):
        self.inner.on_test_batch_begin(batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        self.inner.on_test_batch_end(batch, logs)


def relayed(callbacks: list, **settings) -> list[Relay]:
    return [Relay(callback, **settings) for callback in callbacks]


@contextmanager
def unfinished(optimizer: Any):
    """A fit that the training goes on after: Keras ends every fit by moving the optimizer's
    averaged weights into the model (`use_ema`), which must happen once, at the very end."""
    finalize = optimizer.finalize_variable_values
    optimizer.finalize_variable_values = lambda *args, **kwargs: None
    try:
        yield
    finally:
        optimizer.finalize_variable_values = finalize
