"""ReduceLROnPlateau: lower the learning rate when the monitored metric stalls."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

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


class ReduceLROnPlateauSpec(CallbackSpec):
    """Multiply the learning rate by `factor` when `monitor` has stalled for `patience` epochs.

    Same parameters and defaults as `keras.callbacks.ReduceLROnPlateau`. Keras silently
    ignores unknown keyword arguments here (a misspelled `patiance` does nothing); cbrun
    rejects them.
    """

    type: Literal["ReduceLROnPlateau"]
    monitor: str = Field("val_loss", min_length=1,
                         description=f"{MONITOR_DOC} Defaults to `val_loss`.")
    # The bounds are for editors (JSON Schema); validation keeps its own explaining message.
    factor: Float = Field(0.1, json_schema_extra={"exclusiveMinimum": 0, "exclusiveMaximum": 1},
                          description=("The new learning rate is `lr * factor`; strictly "
                                       "between 0 and 1. Defaults to `0.1`."))
    patience: NonNegInt = Field(10, description=(
        "Epochs without improvement before the learning rate is reduced. Defaults to `10`."))
    verbose: Verbose = Field(0, description=f"{VERBOSE_DOC} Defaults to `0`.")
    mode: Mode = Field("auto", description=f"{MODE_DOC} Defaults to `auto`.")
    min_delta: Float = Field(1e-4, ge=0, description=(
        "Smallest change of `monitor` that counts as an improvement. Defaults to `0.0001`."))
    cooldown: NonNegInt = Field(0, description=(
        "Epochs to wait after a reduction before counting stalled epochs again. "
        "Defaults to `0`."))
    min_lr: Float = Field(0.0, ge=0, description=(
        "The learning rate is never reduced below this. Defaults to `0`."))

    summary = "Reduce the learning rate when a monitored metric stops improving."
    missing_monitor_effect = ("Keras warns and skips the epoch, so patience counts only "
                              "validation epochs")
    # keras/src/callbacks/reduce_lr_on_plateau.py at Keras 3.15. (The change of rate it
    # makes is reported for any callback that changes it: see train/events.py.)
    state_attrs = ("wait", "cooldown_counter", "best")

    @field_validator("factor")
    @classmethod
    def _shrinks(cls, value: float) -> float:
        if not 0.0 < value < 1.0:
            raise ValueError(
                f"factor must be strictly between 0 and 1 (the new rate is lr * factor, so "
                f"it has to shrink the rate), e.g. 0.5 or 0.1; got {value}")
        return value

    def build(self, ctx: BuildContext) -> Any:
        import keras

        return keras.callbacks.ReduceLROnPlateau(**self.kwargs(ctx))
