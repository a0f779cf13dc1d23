"""The `fit:` section: how long and how to train."""

from __future__ import annotations

from pydantic import Field

from cbrun.config.base import StrictModel


class FitConfig(StrictModel):
    epochs: int = Field(gt=0, strict=True, description="Epochs to train in total.")
    steps_per_epoch: int | None = Field(
        None, gt=0, description="Cap on batches per epoch; defaults to one pass over the data.")
    validation_freq: int = Field(
        1, gt=0, description="Validate every N epochs. Defaults to 1.")
    class_weight: dict[int, float] | None = Field(
        None, description="Weight of each class index in the loss. Defaults to none.")
