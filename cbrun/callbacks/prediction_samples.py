"""PredictionSamples: watch the model learn on a fixed handful of held-out inputs."""

from __future__ import annotations

import math
from pathlib import PurePosixPath
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from cbrun.callbacks.base import (
    CallbackSpec,
    PositiveInt,
    RewindPoint,
    check_run_path,
    run_relative,
)

CSV_NAME = "predictions.csv"
PNG_PATTERN = "epoch-{epoch:03d}.png"  # 1-based, as ModelCheckpoint's {epoch} is
TB_TAG = "predictions"


class PredictionSamplesSpec(CallbackSpec):
    """Every `every_n_epochs` epochs, predict on the same few validation (or test) inputs
    and write what the model said about each: truth, prediction, probability.

    The samples are drawn once from the run's seed, so every epoch (and a resumed run)
    shows the same inputs. Image inputs (samples of shape [height, width, channels] with 1,
    3 or 4 channels, or any input when `image_shape` says how to reshape it, e.g. `[8, 8]`
    for the flat digits) are drawn as a grid titled with the true and predicted label and
    the probability, written to `<directory>/epoch-NNN.png` and to TensorBoard's images tab
    (`log_dir`). Every input also gets rows in `<directory>/predictions.csv`: epoch, sample,
    the input values (not for images), truth, prediction, probability. Class names come
    from `class_names`, else from the data source where it has them, else the class ids.
    Each grid written is said under its epoch's line (`sample grid written: ...`).
    """

    type: Literal["PredictionSamples"]
    every_n_epochs: PositiveInt = Field(1, description=(
        "Predict after every N-th epoch (epochs N, 2N, ...). Defaults to `1`."))
    samples: int = Field(16, ge=1, le=100, description=(
        "How many inputs to show (fewer if the split has fewer), 1 to 100. Defaults to "
        "`16`."))
    split: Literal["validation", "test"] = Field("validation", description=(
        "Which held-out data to draw the samples from. Defaults to `validation`."))
    image_shape: list[PositiveInt] | None = Field(None, description=(
        "Show inputs as images of this shape, `[height, width]` or `[height, width, "
        "channels]` (channels 1, 3 or 4), e.g. `[8, 8]` for the flat 64-value digits. "
        "Defaults to `None`: inputs of shape [h, w, 1|3|4] are images, others go to the CSV "
        "table only."))
    class_names: list[str] | None = Field(None, description=(
        "Names for class ids 0, 1, ...; Defaults to `None`: the data source's names where it "
        "has them, else the ids."))
    directory: str = Field("predictions", description=(
        "Folder for the PNGs and predictions.csv, relative to the run directory. Defaults "
        "to `predictions`."))
    log_dir: str | None = Field("tensorboard/predictions", description=(
        "Folder for the TensorBoard image events, relative to the run directory; `null` "
        "writes none. Defaults to `tensorboard/predictions` (next to TensorBoard's default "
        "log_dir, so `tensorboard --logdir runs/<id>/tensorboard` shows both)."))

    path_fields = ("directory", "log_dir")
    summary: ClassVar[str] = ("Predict on fixed held-out samples each epoch: image grids "
                              "(PNG, TensorBoard) and a CSV table.")

    @field_validator("image_shape")
    @classmethod
    def _image(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and not (len(value) == 2 or (len(value) == 3
                                                           and value[2] in (1, 3, 4))):
            raise ValueError(f"image_shape must be [height, width] or [height, width, "
                             f"channels] with 1, 3 or 4 channels; got {value}")
        return value

    @field_validator("directory")
    @classmethod
    def _directory(cls, value: str) -> str:
        return check_run_path(value, "directory", "predictions")

    @field_validator("log_dir")
    @classmethod
    def _log_dir(cls, value: str | None) -> str | None:
        return None if value is None else check_run_path(value, "log_dir",
                                                         "tensorboard/predictions")

    def cross_check(self, config: Any) -> list[tuple[tuple[Any, ...], str]]:
        problems = []
        if self.split == "validation" and not config.data.has_validation:
            problems.append((("split",), ("split: validation needs validation data; set "
                                          "data.validation_split (e.g. 0.2) or "
                                          "data.validation_path")))
        for other in config.callbacks:
            if other is self:
                break  # the later of two clashing callbacks reports it
            if other.type == self.type:
                for name in ("directory", "log_dir"):
                    mine = getattr(self, name)
                    if mine is not None and mine == getattr(other, name):
                        problems.append(((name,), (
                            f"another PredictionSamples already writes to {name} {mine!r}; "
                            "give each its own")))
        input_shape = getattr(config.model, "input_shape", None)
        if self.image_shape and input_shape and (math.prod(self.image_shape)
                                                 != math.prod(input_shape)):
            problems.append((("image_shape",), (
                f"image_shape {self.image_shape} holds {math.prod(self.image_shape)} values, "
                f"but the model's inputs (input_shape {list(input_shape)}) hold "
                f"{math.prod(input_shape)}")))
        return problems

    def events(self, callback: Any, epoch: int, logs: dict[str, Any], model: Any) -> list[str]:
        grid = getattr(callback, "last_grid", None)
        if grid is None or grid[0] != epoch:
            return []  # not an every_n_epochs epoch, or inputs that are no images
        return [f"sample grid written: {run_relative(self.directory) / grid[1]}"]

    def run_files(self) -> list[PurePosixPath]:
        return [run_relative(p) for p in (self.directory, self.log_dir) if p is not None]

    def rewind(self, point: RewindPoint) -> int:
        from cbrun.callbacks.csv_logger import truncate_csv

        folder = point.run_dir / self.directory
        dropped = truncate_csv(folder / CSV_NAME, point.epochs_done)
        for png in folder.glob("epoch-*.png"):
            number = png.stem.removeprefix("epoch-")
            if number.isdigit() and int(number) > point.epochs_done:
                png.unlink()
                dropped += 1
        if self.log_dir is not None and (point.run_dir / self.log_dir).is_dir():
            from cbrun.callbacks.tensorboard_trim import trim_event_files

            dropped += trim_event_files(point.run_dir / self.log_dir, point.epochs_done, 0, 0)
        return dropped

