"""LearningRateScheduler: set the learning rate at each epoch's start from a schedule."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from cbrun.callbacks.base import VERBOSE_DOC, CallbackSpec, Verbose
from cbrun.callbacks.schedules import Schedule
from cbrun.config.base import BuildContext


class LearningRateSchedulerSpec(CallbackSpec):
    """Set the learning rate at the start of every epoch from a declared schedule.

    `keras.callbacks.LearningRateScheduler` takes a Python function; a YAML file cannot hold
    one, so `schedule` is a mapping picked by `kind`: `step`, `exponential`, `cosine` or
    `piecewise`, each with its own fields. Epochs are counted from 0, as Keras passes them.
    The schedule overrides the optimizer's `learning_rate` from the first epoch on. Example:
    `schedule: {kind: cosine, initial: 0.003, decay_epochs: 20, alpha: 0.05}`.
    """

    type: Literal["LearningRateScheduler"]
    schedule: Schedule = Field(description=(
        "The schedule: `{kind: step|exponential|cosine|piecewise, ...}`. Required."))
    verbose: Verbose = Field(0, description=f"{VERBOSE_DOC} Defaults to `0`.")

    summary = "Set the learning rate each epoch from a step/exponential/cosine/piecewise schedule."

    def cross_check(self, config: Any) -> list[tuple[tuple[Any, ...], str]]:
        others = [spec.type for spec in getattr(config, "callbacks", [])
                  if getattr(spec, "type", None) == "ReduceLROnPlateau"]
        if others:
            return [((), ("LearningRateScheduler sets the learning rate at every epoch start, "
                          "which undoes every reduction ReduceLROnPlateau makes; keep one of "
                          "the two"))]
        return []

    def build(self, ctx: BuildContext) -> Any:
        import keras

        return keras.callbacks.LearningRateScheduler(self.schedule, verbose=self.verbose)
