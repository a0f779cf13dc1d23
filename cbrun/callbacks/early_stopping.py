"""EarlyStopping: stop when the monitored metric stops improving."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field

from cbrun.callbacks.base import (
    MODE_DOC,
    MONITOR_DOC,
    VERBOSE_DOC,
    CallbackSpec,
    Float,
    Mode,
    NonNegInt,
    Verbose,
)
from cbrun.config.base import BuildContext


class EarlyStoppingSpec(CallbackSpec):
    """Stop training when `monitor` has not improved for `patience` epochs.

    Same parameters and defaults as `keras.callbacks.EarlyStopping`. cbrun saves the
    callback's wait counter, best value and best weights with every epoch, so a resumed
    run stops at the same epoch an uninterrupted one would.
    """

    type: Literal["EarlyStopping"]
    monitor: str = Field("val_loss", min_length=1,
                         description=f"{MONITOR_DOC} Defaults to `val_loss`.")
    min_delta: Float = Field(0.0, ge=0, description=(
        "Smallest change of `monitor` that counts as an improvement (an absolute amount, "
        "never negative). Defaults to `0`."))
    patience: NonNegInt = Field(0, description=(
        "Epochs without improvement after which training stops. Defaults to `0`."))
    verbose: Verbose = Field(0, description=f"{VERBOSE_DOC} Defaults to `0`.")
    mode: Mode = Field("auto", description=f"{MODE_DOC} Defaults to `auto`.")
    baseline: Float | None = Field(None, description=(
        "A value `monitor` must beat: training stops if it has not after `patience` epochs. "
        "Defaults to `None` (no baseline)."))
    restore_best_weights: bool = Field(False, description=(
        "When stopping, put back the weights of the best epoch instead of keeping the last "
        "ones. Defaults to `false`."))
    start_from_epoch: NonNegInt = Field(0, description=(
        "Epochs to wait before watching for improvement at all (a warm-up). "
        "Defaults to `0`."))

    summary = "Stop training when a monitored metric stops improving."
    missing_monitor_effect = ("Keras warns and skips the epoch, so patience counts only "
                              "validation epochs")
    # keras/src/callbacks/early_stopping.py at Keras 3.15: what on_train_begin resets.
    state_attrs = ("wait", "stopped_epoch", "best", "best_weights", "best_epoch")

    def build(self, ctx: BuildContext) -> Any:
        import keras

        return keras.callbacks.EarlyStopping(**self.kwargs(ctx))

    def events(self, callback: Any, epoch: int, logs: dict[str, Any], model: Any) -> list[str]:
        if not model.stop_training or self.stopped_epoch(callback) != epoch + 1:
            return []
        waited = f"{callback.wait} epoch{'s' if callback.wait != 1 else ''}"
        line = (f"EarlyStopping ended the run at epoch {epoch + 1}: {callback.monitor} did "
                f"not improve for {waited} (best {callback.best:.4g} at epoch "
                f"{callback.best_epoch + 1})")
        if callback.restore_best_weights and callback.best_weights is not None:
            line += f"; weights of epoch {callback.best_epoch + 1} restored"
        return [line]

    def stopped_epoch(self, callback: Any) -> int | None:
        # Keras keeps 0 for "did not stop" (it cannot stop after the first epoch anyway).
        return callback.stopped_epoch + 1 if callback.stopped_epoch else None

    def judges(self, monitor: str) -> bool:
        # Its best counts min_delta and baseline: the epoch restore_best_weights brings back.
        return self.monitor == monitor

    def best(self, callback: Any) -> tuple[int, float] | None:
        if callback.best is None or not math.isfinite(float(callback.best)):
            return None
        return callback.best_epoch + 1, float(callback.best)

    def continue_after_early_stop(self, state: dict[str, Any]) -> dict[str, Any]:
        return {**state, "stopped_epoch": 0, "wait": 0}
