"""The `compile:` section: optimizer, loss, metrics and execution settings."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from cbrun.config import keras_api
from cbrun.config.base import KerasObjectSpec, ManyProblems, StrictModel, is_number, name_or
from cbrun.config.optimizer_options import option_problems
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
        options = self.model_extra or {}
        found = [((key,), (f"{self.type} has no parameter {key!r}"
                          f"{did_you_mean(key, allowed)}; it takes: {', '.join(allowed)}"))
                 for key in options if key not in allowed]
        # 0 is allowed: a model that learns nothing is how one checks the baseline.
        rate = options.get("learning_rate", 0)
        if not (is_number(rate) and rate >= 0):
            found.append((("learning_rate",), (f"learning_rate must be a number >= 0, got "
                                               f"{rate!r}")))
        found += [((key,), problem) for key, problem in option_problems(
            {key: value for key, value in options.items() if key in allowed})]
        if found:
            raise ManyProblems(found)
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


def _per_output(value: Any) -> str:
    """A mapping without `type:` gives one entry per named output."""
    if isinstance(value, dict) and "type" not in value:
        return "kind:per-output"
    return "kind:one"


OneLoss = name_or(ObjectSpec)
Metrics = list[name_or(ObjectSpec)]  # type: ignore[valid-type]
LossConfig = Annotated[
    Union[Annotated[OneLoss, Tag("kind:one")],  # noqa: UP007
          Annotated[dict[str, OneLoss], Tag("kind:per-output")]],
    Discriminator(_per_output)]
MetricsConfig = Annotated[
    Union[Annotated[Metrics, Tag("kind:one")],  # noqa: UP007
          Annotated[dict[str, Metrics], Tag("kind:per-output")]],
    Discriminator(lambda v: "kind:per-output" if isinstance(v, dict) else "kind:one")]


def _loss_problem(value: str | ObjectSpec) -> str | None:
    name = value if isinstance(value, str) else value.type
    if name not in keras_api.api()["losses"]:
        return f"unknown loss {name!r}" + did_you_mean(name, keras_api.api()["losses"])
    return None


def _metric_problem(item: str | ObjectSpec) -> str | None:
    known = keras_api.api()["metric_strings"]
    name = item if isinstance(item, str) else item.type
    return None if name in known else f"unknown metric {name!r}" + did_you_mean(name, known)


class CompileConfig(StrictModel):
    optimizer: name_or(OptimizerSpec) = Field(  # type: ignore[valid-type]
        "adam", description="An optimizer name ('adam') or {type, ...params}. Defaults to adam.")
    loss: LossConfig = Field(
        description="A keras.losses name or {type, ...params}; for a model with several "
                    "outputs, one per output name: {answer: sparse_categorical_crossentropy, "
                    "size: mse}.")
    metrics: MetricsConfig = Field(
        default_factory=list,
        description="keras.metrics names or {type, ...params}; each is logged under its name "
                    "(and val_<name>). With several outputs, per output name: {answer: "
                    "[accuracy]}, logged as answer_accuracy.")
    loss_weights: dict[str, float] | None = Field(
        None, description="With several outputs: how much each output's loss counts in the "
                          "total `loss`, by output name. Defaults to 1 each.")
    steps_per_execution: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        "auto", description=(
            "Batches per compiled call (same results, less Python overhead). `auto`: as many "
            "as take about a quarter of a second, up to an epoch; 1 where a callback needs "
            "every batch or under a strategy with several replicas. A number must divide the "
            "batches of an epoch. Defaults to auto."))
    jit_compile: bool | Literal["auto"] = Field(
        "auto", description="XLA compilation, as in keras.Model.compile. Defaults to auto.")
    mixed_precision: Literal["mixed_float16", "mixed_bfloat16"] | None = Field(
        None, description="Compute in float16 or bfloat16, keep the variables in float32 "
                          "(Keras's dtype policies); mixed_float16 scales the loss (Keras's "
                          "LossScaleOptimizer). Defaults to none (float32). See "
                          "docs/devices.md.")

    @field_validator("optimizer")
    @classmethod
    def _optimizer_name(cls, value: str | OptimizerSpec) -> str | OptimizerSpec:
        if isinstance(value, str):
            optimizer_class(value)  # Keras takes the name as written ('adam'), in any case
        return value

    @model_validator(mode="after")
    def _names(self) -> CompileConfig:
        found: list[tuple[tuple[Any, ...], str]] = []
        losses = self.loss if isinstance(self.loss, dict) else {None: self.loss}
        for key, value in losses.items():
            problem = _loss_problem(value)
            if problem:
                found.append((("loss",) if key is None else ("loss", key), problem))
        metrics = self.metrics if isinstance(self.metrics, dict) else {None: self.metrics}
        for key, items in metrics.items():
            for index, item in enumerate(items):
                problem = _metric_problem(item)
                if problem:
                    where = ("metrics", index) if key is None else ("metrics", key, index)
                    found.append((where, problem))
        if self.loss_weights is not None and self.output_names() is None:
            found.append((("loss_weights",), ("loss_weights weigh the losses of several "
                                             "outputs; give loss per output first")))
        if found:
            raise ManyProblems(found)
        return self

    def output_names(self) -> list[str] | None:
        """The output names a per-output loss gives, or None for a single loss."""
        return list(self.loss) if isinstance(self.loss, dict) else None

    @field_validator("mixed_precision", mode="before")
    @classmethod
    def _float32(cls, value: Any) -> Any:
        if isinstance(value, str) and value.lower() in ("float32", "mixed_float32", "none",
                                                        "off", "false"):
            raise ValueError(f"float32 is the default: leave mixed_precision out (or null) "
                             f"for float32; got {value!r}. The mixed policies are "
                             "mixed_float16 and mixed_bfloat16")
        return value

    @field_validator("steps_per_execution", mode="before")
    @classmethod
    def _spe(cls, value: Any) -> Any:
        # One message for every wrong value, and no lax coercion (true -> 1, "5" -> 5).
        if value == "auto" or (type(value) is int and value >= 1):
            return value
        raise ValueError(f"steps_per_execution must be 'auto' or a whole number >= 1 "
                         f"(batches per compiled call), got {value!r}")

    def logged_metrics(self) -> list[tuple[str, str | ObjectSpec]]:
        """(name Keras logs, metric) for each compiled metric. Keras 3 logs a model with
        several outputs as <output>_<metric> (and <output>_loss); one output, unprefixed."""
        outputs = self.output_names() or []
        if isinstance(self.metrics, list):
            return [(_metric_name(item), item) for item in self.metrics]
        several = len(outputs) > 1
        return [(f"{out}_{_metric_name(item)}" if several else _metric_name(item), item)
                for out, items in self.metrics.items() for item in items]

    def metric_names(self) -> list[str]:
        return [name for name, _ in self.logged_metrics()]

    def loss_names(self) -> list[str]:
        """`loss`, and with several outputs each output's `<output>_loss`."""
        outputs = self.output_names() or []
        return ["loss"] + ([f"{out}_loss" for out in outputs] if len(outputs) > 1 else [])


def _metric_name(item: str | ObjectSpec) -> str:
    """The name Keras logs a compiled metric under (a string as given)."""
    if isinstance(item, str):
        return item
    entry = keras_api.api()["metrics"].get(item.type, {})
    return item.kwargs.get("name") or entry.get("default_name") or _snake(item.type)
