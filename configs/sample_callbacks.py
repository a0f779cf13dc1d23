"""Example callbacks for `type: Custom` (see custom_callback.yaml next to this file).

cbrun puts this folder on the Python path before importing, so the config names the class
as `sample_callbacks:StopAtTarget`.
"""

from __future__ import annotations

import keras


class StopAtTarget(keras.callbacks.Callback):
    """Stop training as soon as a metric reaches a target, e.g. val_accuracy >= 0.95.

    EarlyStopping stops when a metric stops improving; this stops when it is good enough,
    which saves the remaining epochs once a known quality bar is met.

    Args:
        monitor: the logged metric to watch. Defaults to "val_accuracy".
        target: the value that ends training. Defaults to 0.95.
        mode: "max" (stop when monitor >= target) or "min" (monitor <= target).
            Defaults to "max".
    """

    def __init__(self, monitor: str = "val_accuracy", target: float = 0.95, mode: str = "max"):
        super().__init__()
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        self.monitor = monitor
        self.target = float(target)
        self.mode = mode
        self.reached_epoch: int | None = None  # 0-based epoch at which the target was met

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            return
        reached = value >= self.target if self.mode == "max" else value <= self.target
        if reached:
            self.reached_epoch = epoch
            self.model.stop_training = True

    # cbrun's state protocol: what `cbrun resume` saves at each epoch end and puts back.
    def get_state(self) -> dict:
        return {"reached_epoch": self.reached_epoch}

    def set_state(self, state: dict) -> None:
        self.reached_epoch = state["reached_epoch"]
