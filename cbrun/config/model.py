"""The `model:` section: a Sequential stack of Keras layers, checked without Keras."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from cbrun import keras_api
from cbrun.config.adapt import adapt_problem
from cbrun.config.base import KerasObjectSpec, StrictModel, is_number
from cbrun.suggest import did_you_mean

# Keras checks these only when it builds the model, after TensorFlow's import (`Softmax`:
# "Could not interpret activation function identifier"; `units: "10"`: "expected a positive
# integer. Received: units=10", which hides the quotes), or not at all (`Dropout(rate=1.0)`
# silently zeroes every input). A small table of the arguments nearly every model uses,
# checked by name on whichever layer takes them.
_NAMED = (  # (argument name suffix, keras_api table, what it is, examples)
    ("activation", "activations", "activation", "relu, softmax, sigmoid, tanh"),
    ("_initializer", "initializers", "initializer", "glorot_uniform, he_normal, zeros"),
    ("_regularizer", "regularizers", "regularizer", "l1, l2, l1l2"),
    ("_constraint", "constraints", "constraint", "max_norm, non_neg, unit_norm"),
)
_SIZES = ("units", "filters")
_FRACTIONS = ("rate", "dropout", "recurrent_dropout")


def _shown(value: Any) -> str:
    return f"the string {value!r}" if isinstance(value, str) else repr(value)


def layer_value_problem(key: str, value: Any) -> str | None:
    """What is wrong with one layer argument's value, or None. Messages start with the key,
    which is where the loader then points."""
    for suffix, table, what, examples in _NAMED:
        if not key.endswith(suffix):
            continue
        # None is Keras's own default for all of them; a mapping is a serialized Keras object
        # ({class_name: ..., config: ...}), which Keras deserializes itself.
        if value is None or isinstance(value, dict):
            return None
        known = keras_api.names_of(table)
        if isinstance(value, str):
            if value in known:
                return None
            return (f"{key} {value!r} is not a Keras {what}{did_you_mean(value, known)}; Keras "
                    f"names are case-sensitive, e.g. {examples}")
        return f"{key} must be the name of a Keras {what}, e.g. {examples}; got {_shown(value)}"
    if key in _SIZES:
        if type(value) is int and value > 0:
            return None
        unquoted = (" (write the number without quotes)"
                    if isinstance(value, str) and value.strip().isdigit() else "")
        return f"{key} must be a positive integer, got {_shown(value)}{unquoted}"
    if key in _FRACTIONS:
        if is_number(value) and 0 <= value < 1:
            return None
        return (f"{key} is the fraction of inputs dropped, a number in [0, 1) (1 would drop "
                f"everything), got {_shown(value)}")
    return None


def layer_value_problems(data: Any) -> list[tuple[tuple[Any, ...], str]]:
    """Every bad well-known argument of every layer in the parsed config, each at its own
    key (the schema stops at the first one per layer)."""
    model = data.get("model") if isinstance(data, dict) else None
    layers = model.get("layers") if isinstance(model, dict) else None
    found = []
    for index, layer in enumerate(layers if isinstance(layers, list) else []):
        kind = layer.get("type") if isinstance(layer, dict) else None
        takes = keras_api.layer_params(kind) if isinstance(kind, str) else None
        for key, value in (layer.items() if takes else ()):
            problem = layer_value_problem(key, value) if key in takes else None
            if problem:
                found.append((("model", "layers", index, key), problem))
    return found


class LayerSpec(KerasObjectSpec):
    """One layer: `type` is any keras.layers class; every other key is its keyword argument."""

    type: str = Field(description="A keras.layers class name, e.g. Dense, Dropout, Conv2D.")
    adapt: bool = Field(False, strict=True, description=(
        "Preprocessing layers only (Normalization, StringLookup, IntegerLookup, "
        "TextVectorization, Discretization): learn from the training split before the first "
        "epoch. Defaults to false."))

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
        for key, value in (self.model_extra or {}).items():
            problem = layer_value_problem(key, value)
            if problem:
                raise ValueError(problem)
        problem = adapt_problem(self.type, self.adapt)
        if problem:
            raise ValueError(problem)
        return self


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
