"""The sweep file: a base config, the space to search and how to search it.

    name: digits-lr                  # the sweep's folder: <runs-dir>/sweeps/<name>/
    base: digits.yaml                # relative to this file
    set: [fit.epochs=5]              # fixed overrides for every trial (optional)
    space:                           # keys as `--set` takes them
      compile.optimizer.learning_rate: {type: loguniform, low: 1e-4, high: 1e-1}
      model.layers[1].units: {type: choice, values: [32, 64, 128]}
      callbacks.EarlyStopping.patience: {type: int, low: 2, high: 6}
    metric: val_accuracy             # default: the base config's monitored value
    direction: maximize              # default: that metric's own direction
    trials: 20
    sampler: tpe                     # tpe, random, grid
    pruner: median                   # none, median, hyperband (or {type: median, ...})

Lower floor: no Optuna and no TensorFlow here.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, model_validator

from cbrun.config.base import StrictModel
from cbrun.config.root import NAME_PATTERN


class _Strict(StrictModel):
    # `true` is no number and "3" no int: a sweep file is read as strictly as a config.
    model_config = ConfigDict(extra="forbid", strict=True)


Scalar = bool | int | float | str | None


class Choice(_Strict):
    type: Literal["choice"]
    values: list[Scalar] = Field(min_length=1, description="The values to choose from.")

    @model_validator(mode="after")
    def _distinct(self) -> Choice:
        seen: list[Any] = []
        for value in self.values:
            if any(value == old and type(value) is type(old) for old in seen):
                raise ValueError(f"values lists {value!r} twice; each value once")
            seen.append(value)
        return self

    def ends(self) -> list[Any]:
        return list(self.values)

    def grid(self) -> list[Any]:
        return list(self.values)


class Uniform(_Strict):
    type: Literal["uniform"]
    low: float = Field(allow_inf_nan=False)
    high: float = Field(allow_inf_nan=False)

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if not self.low < self.high:
            raise ValueError(f"low must be below high; got low {self.low}, high {self.high}")
        return self

    def ends(self) -> list[Any]:
        return [self.low, self.high]

    def grid(self) -> None:
        return None


class LogUniform(Uniform):
    type: Literal["loguniform"]  # type: ignore[assignment]

    @model_validator(mode="after")
    def _positive(self) -> LogUniform:
        if self.low <= 0:
            raise ValueError(f"a log scale needs low > 0; got {self.low}")
        return self


class IntRange(_Strict):
    type: Literal["int"]
    low: int
    high: int
    step: int = Field(1, gt=0, description="Only low, low+step, ... up to high. Defaults to 1.")
    log: bool = Field(False, description="Sample on a log scale (needs low >= 1, step 1).")

    @model_validator(mode="after")
    def _ordered(self) -> IntRange:
        if not self.low < self.high:
            raise ValueError(f"low must be below high; got low {self.low}, high {self.high}")
        if self.log and (self.low < 1 or self.step != 1):
            raise ValueError("log: true needs low >= 1 and step 1 (Optuna's rule)")
        return self

    def ends(self) -> list[Any]:
        return [self.low, self.grid()[-1]]

    def grid(self) -> list[Any]:
        return list(range(self.low, self.high + 1, self.step))


Range = Annotated[Choice | Uniform | LogUniform | IntRange, Field(discriminator="type")]


def _tagged(value: Any) -> Any:
    """`pruner: median` is short for `pruner: {type: median}`."""
    return {"type": value} if isinstance(value, str) else value


class NoPruner(_Strict):
    type: Literal["none"]


class MedianPruner(_Strict):
    type: Literal["median"]
    startup_trials: int = Field(
        5, ge=0, description="Finished trials before any trial is pruned. Defaults to 5.")
    warmup_epochs: int = Field(
        0, ge=0, description="Epochs a trial runs before it can be pruned. Defaults to 0.")


class HyperbandPruner(_Strict):
    type: Literal["hyperband"]
    min_epochs: int = Field(1, ge=1, description="Epochs every trial gets. Defaults to 1.")
    reduction_factor: int = Field(3, ge=2, description="Defaults to 3.")


Pruner = Annotated[NoPruner | MedianPruner | HyperbandPruner, Field(discriminator="type"),
                   BeforeValidator(_tagged)]


class SweepFile(_Strict):
    name: str = Field(pattern=NAME_PATTERN, description="The sweep (and its study) name.")
    base: str = Field(min_length=1, description="The config each trial starts from, "
                                                "relative to the sweep file.")
    set: list[str] = Field(default_factory=list,
                           description="Fixed `KEY=VALUE` overrides for every trial.")
    space: dict[str, Range] = Field(min_length=1,
                                    description="Dotted config keys (as --set takes them) "
                                                "and their ranges.")
    metric: str | None = Field(None, description="The logged value to optimise. Defaults to "
                                                 "the base config's monitored value.")
    direction: Literal["minimize", "maximize"] | None = None
    trials: int = Field(gt=0, description="Completed or pruned trials the sweep ends with.")
    sampler: Literal["tpe", "random", "grid"] = "tpe"
    seed: int | None = Field(None, ge=0, lt=2**32, description="Seed of the sampler.")
    pruner: Pruner = Field(default_factory=lambda: NoPruner(type="none"))

    @model_validator(mode="after")
    def _grid_fits(self) -> SweepFile:
        if self.sampler != "grid":
            return self
        continuous = [key for key, r in self.space.items() if r.grid() is None]
        if continuous:
            raise ValueError(f"sampler: grid needs a finite set of values; {continuous[0]!r} "
                             f"is a continuous range (use choice or int)")
        size = math.prod(len(r.grid()) for r in self.space.values())
        if self.trials > size:
            raise ValueError(f"trials: {self.trials} is more than the {size} points of the "
                             f"grid; each point runs once, so trials can be at most {size}")
        return self

    def grid_space(self) -> dict[str, list[Any]]:
        return {key: r.grid() for key, r in self.space.items()}
