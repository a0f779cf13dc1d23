"""The `model:` section: a Sequential stack of Keras layers, checked without Keras."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field, field_validator, model_validator

from cbrun import keras_api
from cbrun.config.base import StrictModel
from cbrun.suggest import did_you_mean


class LayerSpec(StrictModel):
    """One layer: `type` is any keras.layers class; every other key is its keyword argument."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="A keras.layers class name, e.g. Dense, Dropout, Conv2D.")

    @field_validator("type")
    @classmethod
    def _known_layer(cls, value: str) -> str:
        if keras_api.layer_params(value) is None:
            raise ValueError(f"unknown layer type {value!r}"
                             + did_you_mean(value, keras_api.api()["layers"]))
        return value

    @model_validator(mode="after")
    def _known_kwargs(self) -> LayerSpec:
        allowed = keras_api.layer_params(self.type) or []
        for key in self.model_extra or {}:
            if key not in allowed:
                raise ValueError(
                    f"{self.type} has no parameter {key!r}{did_you_mean(key, allowed)}; "
                    f"it takes: {', '.join(allowed)}")
        return self

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class ModelConfig(StrictModel):
    input_shape: list[int] = Field(
        min_length=1, description="Shape of one sample, without the batch axis, e.g. [64].")
    layers: list[LayerSpec] = Field(min_length=1, description="The layers, first to last.")

    @field_validator("input_shape")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(d <= 0 for d in value):
            raise ValueError(f"every dimension must be a positive integer, got {value}")
        return value
