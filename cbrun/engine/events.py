"""What happened during an epoch that a user wants to hear about: the learning rate changed,
a callback acted (each spec says what its callback did), a NaN loss stopped the run."""

from __future__ import annotations

import math
from typing import Any

import keras

from cbrun.engine.callbacks.bound import Bound


def _lr(model: keras.Model) -> float:
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


class Events:
    def __init__(self, bound: list[Bound]):
        self.bound = bound
        self.stop_note: str | None = None  # what the callback that ended the run said

    def start(self) -> None:
        for spec, callback in self.bound:
            spec.begin_events(callback)

    def after_epoch(self, model: keras.Model, epoch: int, logs: dict[str, Any],
                    epochs: int | None = None) -> list[str]:
        lines = []
        # Whoever changed it (ReduceLROnPlateau, a schedule, custom code), the user hears it.
        used = logs.get("learning_rate")
        now = _lr(model)
        if used is not None and not _close(float(used), now):
            last = model.stop_training or (epochs is not None and epoch + 1 >= epochs)
            # After the last epoch no epoch uses it, unless a resume adds some.
            when = ("for epochs a resume adds" if last else f"from epoch {epoch + 2}")
            lines.append(f"learning rate {float(used):.3g} -> {now:.3g} {when}")
        for spec, callback in self.bound:
            said = spec.events(callback, epoch, logs, model)
            lines.extend(said)
            if said and model.stop_training and spec.stopped_epoch(callback) == epoch + 1:
                self.stop_note = said[-1]
        loss = logs.get("loss")
        if loss is not None and not math.isfinite(float(loss)):  # cbrun's NanGuard stops it
            lines.append("the loss became NaN or inf and training was stopped")
        return lines


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-12 + 1e-6 * abs(b)
