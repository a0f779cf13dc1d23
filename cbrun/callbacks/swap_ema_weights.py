"""SwapEMAWeights: evaluate (and optionally checkpoint) with the optimizer's EMA weights."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from cbrun.callbacks.base import CallbackSpec
from cbrun.config.base import BuildContext


def _uses_ema(optimizer: Any) -> bool:
    if isinstance(optimizer, str) or optimizer is None:
        return False
    value = getattr(optimizer, "use_ema", None)
    if value is None:
        value = (getattr(optimizer, "model_extra", None) or {}).get("use_ema")
    return value is True


class SwapEMAWeightsSpec(CallbackSpec):
    """Swap in the optimizer's exponential moving average of the weights for evaluation.

    Same parameters and defaults as `keras.callbacks.SwapEMAWeights`. The optimizer must
    keep the average: `compile: {optimizer: {type: Adam, use_ema: true}}`; cbrun checks this
    before training, where Keras would fail at the first epoch. Put ModelCheckpoint after this
    callback to checkpoint the EMA weights.
    """

    type: Literal["SwapEMAWeights"]
    swap_on_epoch: bool = Field(False, description=(
        "Also keep the EMA weights in the model at each epoch end, so later callbacks "
        "(ModelCheckpoint) see them. Defaults to `false`."))

    summary = "Evaluate with the optimizer's EMA weights (needs use_ema: true)."

    def cross_check(self, config: Any) -> list[tuple[tuple[Any, ...], str]]:
        optimizer = config.compile.optimizer
        if _uses_ema(optimizer):
            return []
        name = optimizer if isinstance(optimizer, str) else getattr(optimizer, "type", "?")
        return [((), (f"SwapEMAWeights needs an optimizer that keeps an exponential moving "
                      f"average, but compile.optimizer ({name!r}) does not set use_ema: true; "
                      f"write it as {{type: {name}, use_ema: true}}"))]

    def build(self, ctx: BuildContext) -> Any:
        import keras

        return keras.callbacks.SwapEMAWeights(**self.kwargs(ctx))
