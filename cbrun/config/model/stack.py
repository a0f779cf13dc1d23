"""`model: {input_shape, layers}`: a Sequential stack, each layer fed by the one before."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, field_validator, model_validator

from cbrun.config.base import ManyProblems, StrictModel
from cbrun.config.model.layers import DTYPES, LayerSpec, UnfreezeSpec, unfreeze_problems


class StackModel(StrictModel):
    """A Sequential stack: the layers in order, the first fed with `input_shape` samples."""

    kind: ClassVar[str] = "stack"

    input_shape: list[int] = Field(
        min_length=1, description="Shape of one sample, without the batch axis, e.g. [64].")
    input_dtype: DTYPES = Field(
        "float32", description="Element type of the samples: int32/int64 for ids, string for "
                               "raw text fed to TextVectorization or StringLookup.")
    layers: list[LayerSpec] = Field(min_length=1, description="The layers, first to last.")
    unfreeze: list[UnfreezeSpec] = Field(
        default_factory=list, description="Stages that unfreeze layers declared `trainable: "
                                          "false` (by their `name`) after some epochs.")

    @field_validator("input_shape")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(d <= 0 for d in value):
            raise ValueError(f"every dimension must be a positive integer, got {value}")
        return value

    @model_validator(mode="after")
    def _unfreeze_names(self) -> StackModel:
        frozen = {spec.layer_name: spec.frozen for spec in self.layers if spec.layer_name}
        found = unfreeze_problems(self.unfreeze, frozen)
        found += [(("layers", i, "adapt"), ("adapt: targets learns the targets at the "
                                            "model's output, so it is for the last layer"))
                  for i, spec in enumerate(self.layers[:-1]) if spec.adapt == "targets"]
        if found:
            raise ManyProblems(found)
        return self

    def output_names(self) -> list[str] | None:
        return None  # one output, logged without a prefix
