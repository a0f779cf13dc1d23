"""One layer of a model: any keras.layers class or keras.applications backbone, with its
keyword arguments, checked without Keras."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from cbrun.config import keras_api
from cbrun.config.adapt import adapt_problem, adapt_width_problem
from cbrun.config.base import KerasObjectSpec, ManyProblems, StrictModel, is_number
from cbrun.suggest import did_you_mean

Found = list[tuple[tuple[Any, ...], str]]

# `string` feeds raw text to TextVectorization or StringLookup, which learn their vocabulary
# with `adapt: true`.
DTYPES = Literal["float32", "float16", "bfloat16", "float64", "int32", "int64", "uint8", "bool",
                 "string"]

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

# A backbone's input is the tensor it is applied to: cbrun passes its shape itself.
_BACKBONE_SET_BY_CBRUN = ("input_tensor", "input_shape")
# Keras downloads anything else `weights` names; cbrun takes no URLs and no paths here.
_BACKBONE_CHOICES = {"weights": (None, "imagenet"), "pooling": (None, "avg", "max")}


def _shown(value: Any) -> str:
    return f"the string {value!r}" if isinstance(value, str) else repr(value)


def layer_value_problem(key: str, value: Any) -> str | None:
    """What is wrong with one layer argument's value, or None."""
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


def is_backbone(kind: str) -> bool:
    return keras_api.layer_params(kind) is None and keras_api.application_params(kind) is not None


def accepted_params(kind: str) -> list[str] | None:
    """The keys a layer of this type takes besides `type`; None when the type is unknown."""
    params = keras_api.layer_params(kind)
    if params is not None:
        return params
    params = keras_api.application_params(kind)
    if params is None:
        return None
    return [p for p in params if p not in _BACKBONE_SET_BY_CBRUN] + ["trainable"]


ADAPT_FIELD = Field(False, description=(
    "true, for preprocessing layers (Normalization, StringLookup, IntegerLookup, "
    "TextVectorization, Discretization): learn from the training split's inputs before the "
    "first epoch. `targets`, for a Normalization with invert: true at a model output: learn "
    "the training targets' mean and variance, so the network learns scaled targets and the "
    "model outputs values in the data's units. Defaults to false."))
def _adapt_value(value: Any) -> Any:
    if value is True or value is False or value == "targets":
        return value
    raise ValueError(f"adapt must be true, false or targets, got {_shown(value)}")


Adapt = Annotated[bool | Literal["targets"], BeforeValidator(_adapt_value)]


def layer_problems(kind: str, kwargs: dict[str, Any], adapt: bool | str = False) -> Found:
    """Every problem of one layer's type and keyword arguments, each at its key."""
    problem = adapt_problem(kind, adapt, kwargs)
    if problem and accepted_params(kind) is not None:
        return [(("adapt",), problem), *layer_problems(kind, kwargs)]
    allowed = accepted_params(kind)
    if allowed is None:
        names = [*keras_api.api()["layers"], *keras_api.api()["applications"]]
        return [(("type",), (f"unknown layer type {kind!r}{did_you_mean(kind, names)}; "
                            "a keras.layers class or a keras.applications backbone"))]
    found: Found = []
    for key, value in kwargs.items():
        if key not in allowed:
            found.append(((key,), (f"{kind} has no parameter {key!r}"
                                  f"{did_you_mean(key, allowed)}; it takes: {', '.join(allowed)}")))
            continue
        problem = layer_value_problem(key, value)
        choices = _BACKBONE_CHOICES.get(key) if is_backbone(kind) else None
        if choices is not None and value not in choices:
            shown = ", ".join("null" if c is None else c for c in choices)
            problem = f"{key} must be one of {shown}; got {_shown(value)}"
        if key == "trainable" and not isinstance(value, bool):
            problem = f"trainable must be true or false, got {_shown(value)}"
        if problem:
            found.append(((key,), problem))
    width = adapt_width_problem(kind, kwargs, adapt)
    if width and not found:
        found.append(((width[0] if width[0] in kwargs else "adapt",), width[1]))
    return found


def unknown_keys(kind: str, kwargs: dict[str, Any]) -> tuple[tuple[str], ...]:
    allowed = accepted_params(kind) or []
    return tuple((key,) for key in kwargs if key not in allowed)


class LayerSpec(KerasObjectSpec):
    """One layer: `type` is a keras.layers class or a keras.applications backbone (e.g.
    MobileNetV2; `trainable: false` freezes it); every other key is its keyword argument."""

    type: str = Field(description="A keras.layers class (Dense, Conv2D...) or a "
                                  "keras.applications backbone (MobileNetV2, ResNet50...).")
    adapt: Adapt = ADAPT_FIELD

    @model_validator(mode="after")
    def _known(self) -> LayerSpec:
        found = layer_problems(self.type, self.kwargs, self.adapt)
        if found:
            raise ManyProblems(found, unknown_keys(self.type, self.kwargs))
        return self

    @property
    def layer_name(self) -> str | None:
        name = self.kwargs.get("name")
        return name if isinstance(name, str) else None

    @property
    def frozen(self) -> bool:
        return self.kwargs.get("trainable") is False


class UnfreezeSpec(StrictModel):
    """A second stage of training: after `at_epoch` epochs, these layers train too."""

    at_epoch: int = Field(gt=0, description="Epochs trained with the layers frozen; they "
                                            "train from the next epoch on.")
    layers: list[str] = Field(min_length=1, description="Names of layers declared with "
                                                        "`trainable: false`.")
    learning_rate: float | None = Field(
        None, gt=0, description="The optimizer's learning rate from then on (fine-tuning "
                                "usually wants a smaller one). Defaults to unchanged.")


def unfreeze_problems(stages: list[UnfreezeSpec], frozen: dict[str, bool]) -> Found:
    """Names in `unfreeze` that are not layers declared frozen. `frozen`: every layer name
    of the model -> whether it is declared `trainable: false`."""
    found: Found = []
    for index, stage in enumerate(stages):
        for j, name in enumerate(stage.layers):
            loc = ("unfreeze", index, "layers", j)
            if name not in frozen:
                found.append((loc, (f"no layer is named {name!r}"
                                   f"{did_you_mean(name, frozen)}; layers: "
                                   f"{', '.join(frozen) or 'none has a name'}")))
            elif not frozen[name]:
                found.append((loc, (f"layer {name!r} is not frozen (declare it with trainable: "
                                   "false), so unfreezing it would change nothing")))
    return found
