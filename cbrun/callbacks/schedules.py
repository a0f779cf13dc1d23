"""Declarative learning-rate schedules for LearningRateScheduler.

A YAML file cannot hold a function, so a schedule is a mapping picked by `kind`. Each one
is a pure function of the 0-based epoch (the index Keras passes; the progress display shows
it plus one), so a resumed run gets exactly the rates an uninterrupted one would.

Warm-up (where offered): for `warmup_epochs` W > 0, epoch e < W trains at
`initial * (e + 1) / (W + 1)`, a straight ramp that reaches `initial` at epoch W, where the
schedule proper starts counting from 0.
"""

from __future__ import annotations

import itertools
import math
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator

from cbrun.callbacks.base import Float, NonNegInt, PositiveInt
from cbrun.config.base import StrictModel

PositiveFloat = Annotated[Float, Field(gt=0)]

_INITIAL_DOC = "The learning rate at the start (after any warm-up); > 0. Required."
_WARMUP_DOC = ("Epochs of linear warm-up before the schedule starts: epoch e < W uses "
               "initial * (e + 1) / (W + 1). Defaults to `0`.")


class _Schedule(StrictModel):
    model_config = ConfigDict(strict=True)

    def __call__(self, epoch: int, lr: float | None = None) -> float:
        """The learning rate for 0-based `epoch`; `lr` (the current rate) is ignored."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        warmup = getattr(self, "warmup_epochs", 0)
        if epoch < warmup:
            return self.initial * (epoch + 1) / (warmup + 1)
        return float(self._rate(epoch - warmup))

    def _rate(self, epoch: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError


class StepSchedule(_Schedule):
    """`initial * factor ** (epoch // every)`: drop by `factor` every `every` epochs."""

    kind: Literal["step"]
    initial: PositiveFloat = Field(description=_INITIAL_DOC)
    factor: Float = Field(gt=0, le=1, description=(
        "Multiplier applied at each step, in (0, 1]. Required."))
    every: PositiveInt = Field(description="Epochs between two drops. Required.")
    warmup_epochs: NonNegInt = Field(0, description=_WARMUP_DOC)

    def _rate(self, epoch: int) -> float:
        return self.initial * self.factor ** (epoch // self.every)


class ExponentialSchedule(_Schedule):
    """`initial * rate ** epoch`: multiply by `rate` after every epoch."""

    kind: Literal["exponential"]
    initial: PositiveFloat = Field(description=_INITIAL_DOC)
    rate: Float = Field(gt=0, le=1, description="Multiplier per epoch, in (0, 1]. Required.")
    warmup_epochs: NonNegInt = Field(0, description=_WARMUP_DOC)

    def _rate(self, epoch: int) -> float:
        return self.initial * self.rate ** epoch


class CosineSchedule(_Schedule):
    """Half a cosine from `initial` down to `alpha * initial` over `decay_epochs`, then flat.

    As `keras.optimizers.schedules.CosineDecay`, counted in epochs:
    `initial * ((1 - alpha) * 0.5 * (1 + cos(pi * min(epoch, decay_epochs) / decay_epochs))
    + alpha)`.
    """

    kind: Literal["cosine"]
    initial: PositiveFloat = Field(description=_INITIAL_DOC)
    decay_epochs: PositiveInt = Field(description=(
        "Epochs from `initial` to the minimum. Required."))
    alpha: Float = Field(0.0, ge=0, le=1, description=(
        "The minimum as a fraction of `initial`, in [0, 1]. Defaults to `0`."))
    warmup_epochs: NonNegInt = Field(0, description=_WARMUP_DOC)

    def _rate(self, epoch: int) -> float:
        progress = min(epoch, self.decay_epochs) / self.decay_epochs
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.initial * ((1.0 - self.alpha) * cosine + self.alpha)


class PiecewiseSchedule(_Schedule):
    """Constant pieces: `values[i]` from epoch `boundaries[i-1]` up to `boundaries[i]`.

    With `boundaries: [10, 20]` and `values: [0.01, 0.001, 0.0001]`, epochs 0-9 use 0.01,
    10-19 use 0.001 and 20 on use 0.0001 (0-based epochs: the display shows 1-10, ...).
    """

    kind: Literal["piecewise"]
    boundaries: list[PositiveInt] = Field(min_length=1, description=(
        "0-based epochs at which the next value starts, strictly increasing. Required."))
    values: list[PositiveFloat] = Field(description=(
        "The rates: one before the first boundary and one after each, so "
        "len(boundaries) + 1 of them. Required."))

    @model_validator(mode="after")
    def _shape(self) -> PiecewiseSchedule:
        bounds = self.boundaries
        for before, after in itertools.pairwise(bounds):
            if after <= before:
                raise ValueError(f"boundaries must be strictly increasing; got {bounds} "
                                 f"({after} follows {before})")
        if len(self.values) != len(bounds) + 1:
            raise ValueError(
                f"values needs len(boundaries) + 1 = {len(bounds) + 1} rates (one before "
                f"the first boundary and one after each); got {len(self.values)}")
        return self

    @property
    def initial(self) -> float:
        return self.values[0]

    def _rate(self, epoch: int) -> float:
        return self.values[sum(1 for b in self.boundaries if epoch >= b)]


Schedule = Annotated[
    StepSchedule | ExponentialSchedule | CosineSchedule | PiecewiseSchedule,
    Field(discriminator="kind"),
]
