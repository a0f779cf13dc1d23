"""The `data:` section: where the arrays come from and how they are batched."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from cbrun.config.base import StrictModel


class DataConfig(StrictModel):
    """Training data. `digits` ships inside cbrun (8x8 handwritten digits, 1,797 images,
    10 classes), so a run works offline and trains in seconds."""

    source: Literal["digits", "npz"] = Field(
        "digits", description="`digits` (embedded) or `npz` (arrays in a .npz file). "
                              "Defaults to digits.")
    path: str | None = Field(
        None, description="The .npz file for `source: npz`, relative to the config file.")
    x_key: str = Field("x", description="Array name of the inputs in the .npz. Defaults to x.")
    y_key: str = Field("y", description="Array name of the targets in the .npz. Defaults to y.")
    validation_path: str | None = Field(
        None, description="A separate .npz with validation arrays (same keys). "
                          "Excludes validation_split.")
    validation_split: float = Field(
        0.0, ge=0.0, lt=1.0,
        description="Fraction of the training arrays held out for validation, taken from the "
                    "end before shuffling (as Keras does). Defaults to 0.0.")
    batch_size: int = Field(32, gt=0, description="Samples per batch. Defaults to 32.")
    shuffle: bool = Field(
        True, description="Shuffle the training samples every epoch; the order is a pure "
                          "function of (seed, epoch), which is what makes resume exact. "
                          "Defaults to true.")

    @model_validator(mode="after")
    def _source_fits(self) -> DataConfig:
        if self.source == "npz" and not self.path:
            raise ValueError("source: npz needs `path`, the .npz file with the arrays")
        if self.source == "digits" and self.path:
            raise ValueError("`path` is only for source: npz; digits ships inside cbrun")
        if self.validation_path and self.validation_split:
            raise ValueError("give either validation_split or validation_path, not both")
        return self

    @property
    def has_validation(self) -> bool:
        return bool(self.validation_split) or bool(self.validation_path)
