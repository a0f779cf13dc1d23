"""The `compile:` section: optimizer, loss, metrics and execution settings."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from cbrun import keras_api
from cbrun.config.base import KerasObjectSpec, StrictModel, is_number, name_or
from cbrun.suggest import did_you_mean


def optimizer_class(name: str) -> str:
    """The Keras class of an optimizer name ('adam' -> 'Adam'); ValueError when none."""
    found = keras_api.optimizer_class(name)
    if found is None:
        raise ValueError(f"unknown optimizer {name!r}"
                         + did_you_mean(name, keras_api.api()["optimizers"]))
    return found


class OptimizerSpec(KerasObjectSpec):
    """`{type: Adam, learning_rate: 0.001, ...}`: any keras.optimizers class and its kwargs."""

    type: str = Field(description="A keras.optimizers class name (case-insensitive).")

    @field_validator("type")
    @classmethod
    def _known(cls, value: str) -> str:
        return optimizer_class(value)

    @model_validator(mode="after")
    def _known_kwargs(self) -> OptimizerSpec:
        allowed = keras_api.api()["optimizers"][self.type]
        for key, value in (self.model_extra or {}).items():
            if key not in allowed:
                raise ValueError(f"{self.type} has no parameter {key!r}"
                                 f"{did_you_mean(key, allowed)}; it takes: {', '.join(allowed)}")
            if key == "learning_rate" and not (is_number(value) and value > 0):
                raise ValueError(f"learning_rate must be a positive number, got {value!r}")
        return self


class ObjectSpec(KerasObjectSpec):
    """A loss or metric given as `{type: ClassName, ...kwargs}`."""

    @model_validator(mode="after")
    def _name_is_text(self) -> ObjectSpec:
        name = (self.model_extra or {}).get("name")
        if name is not None and not (isinstance(name, str) and name.strip()):
            raise ValueError(f"name is the key the value is logged under, so it must be "
                             f"non-empty text, got {name!r}")
        return self


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z][a-z])|(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


class CompileConfig(StrictModel):
    optimizer: name_or(OptimizerSpec) = Field(  # type: ignore[valid-type]
        "adam", description="An optimizer name ('adam') or {type, ...params}. Defaults to adam.")
    loss: name_or(ObjectSpec) = Field(description="A keras.losses name or {type, ...params}.")
    metrics: list[name_or(ObjectSpec)] = Field(  # type: ignore[valid-type]
        default_factory=list, description="keras.metrics names or {type, ...params}; each is "
                                          "logged under its name (and val_<name>).")
    steps_per_execution: int | Literal["auto"] = Field(
        "auto", description="Batches per compiled call. `auto` lets cbrun pick the largest "
                            "value the batch-level callbacks allow (same results, less Python "
                            "overhead). Defaults to auto.")
    jit_compile: bool | Literal["auto"] = Field(
        "auto", description="XLA compilation, as in keras.Model.compile. Defaults to auto.")

    @field_validator("optimizer")
    @classmethod
    def _optimizer_name(cls, value: str | OptimizerSpec) -> str | OptimizerSpec:
        if isinstance(value, str):
            optimizer_class(value)  # Keras takes the name as written ('adam'), in any case
        return value

    @field_validator("loss")
    @classmethod
    def _loss_name(cls, value: str | ObjectSpec) -> str | ObjectSpec:
        name = value if isinstance(value, str) else value.type
        if name not in keras_api.api()["losses"]:
            raise ValueError(f"unknown loss {name!r}"
                             + did_you_mean(name, keras_api.api()["losses"]))
        return value

    @field_validator("metrics")
    @classmethod
    def _metric_names(cls, value: list[str | ObjectSpec]) -> list[str | ObjectSpec]:
        known = keras_api.api()["metric_strings"]
        for item in value:
            name = item if isinstance(item, str) else item.type
            if name not in known:
                raise ValueError(f"unknown metric {name!r}" + did_you_mean(name, known))
        return value

    @field_validator("steps_per_execution")
    @classmethod
    def _spe(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError(f"steps_per_execution must be 'auto' or an integer >= 1, "
                             f"got {value}")
        return value

    def metric_names(self) -> list[str]:
        """The names Keras logs for the compiled metrics (Keras logs a string as given)."""
        names = []
        for item in self.metrics:
            if isinstance(item, str):
                names.append(item)
            else:
                entry = keras_api.api()["metrics"].get(item.type, {})
                names.append(item.kwargs.get("name") or entry.get("default_name")
                             or _snake(item.type))
        return names
