"""TerminateOnNaN: stop as soon as the loss is NaN or infinite."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from cbrun.callbacks.base import CallbackSpec
from cbrun.config.base import BuildContext


class TerminateOnNaNSpec(CallbackSpec):
    """Stop training when a batch's loss is NaN or infinite.

    Same parameters and defaults as `keras.callbacks.TerminateOnNaN`.
    """

    type: Literal["TerminateOnNaN"]
    raise_error: bool = Field(False, description=(
        "`true` raises an error at once (other callbacks' end-of-training steps are "
        "skipped, so the run ends as failed); `false` stops training gracefully. "
        "Defaults to `false`."))

    summary = "Stop training when the loss becomes NaN or infinite."
    # batch_level() stays the base's False although it reads the loss at batch ends: a NaN
    # loss stays NaN, so seeing every Nth batch only stops training a few batches later.

    def build(self, ctx: BuildContext) -> Any:
        import keras

        return keras.callbacks.TerminateOnNaN(**self.kwargs(ctx))
