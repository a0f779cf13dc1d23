"""TensorBoard: write event files for TensorBoard."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from cbrun.callbacks.base import (
    BatchCount,
    CallbackSpec,
    NonNegInt,
    RewindPoint,
    check_run_path,
    run_relative,
)
from cbrun.config.base import BuildContext

_PROFILE_RULE = ("profile_batch must be 0 (off), a positive batch number, or a range of "
                 "batches [start, stop] (or 'start,stop') with 0 < start <= stop")


def parse_profile_batch(value: Any) -> int | list[int]:
    """0, N, [start, stop] or 'start,stop' -> 0, N or [start, stop]; ValueError otherwise."""
    given = value
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
        if not all(p.isdigit() for p in parts):
            raise ValueError(f"{_PROFILE_RULE}; got {given!r}")
        value = [int(p) for p in parts]
        if len(value) == 1:
            value = value[0]
    if type(value) is int:
        if value < 0:
            raise ValueError(f"{_PROFILE_RULE}; got {given!r}")
        return value
    if (isinstance(value, (list, tuple)) and len(value) == 2
            and all(type(v) is int for v in value)):
        start, stop = value
        if 0 < start <= stop:
            return [start, stop]
    raise ValueError(f"{_PROFILE_RULE}; got {given!r}")


class TensorBoardSpec(CallbackSpec):
    """Write metrics, weight histograms and profiles for TensorBoard.

    Same parameters and defaults as `keras.callbacks.TensorBoard`, except `log_dir`: it is
    relative to the run directory and defaults to `tensorboard` (Keras's default is `logs`).
    View it with `tensorboard --logdir runs/<id>/tensorboard`.
    """

    type: Literal["TensorBoard"]
    log_dir: str = Field("tensorboard", description=(
        "Folder for the event files, relative to the run directory. Defaults to "
        "`tensorboard` (Keras: `logs`)."))
    histogram_freq: NonNegInt = Field(0, description=(
        "Every how many epochs to write weight histograms; 0 writes none. Defaults to `0`."))
    write_graph: bool = Field(True, description=(
        "Write the model graph (Keras 3 writes its summary). Defaults to `true`."))
    write_images: bool = Field(False, description=(
        "Write the weights as images. Defaults to `false`."))
    write_steps_per_second: bool = Field(False, description=(
        "Also log training steps per second. Defaults to `false`."))
    update_freq: Literal["batch", "epoch"] | BatchCount = Field("epoch", description=(
        "When to write losses and metrics: `epoch`, `batch` (every batch) or a positive "
        "integer N (every N batches). Defaults to `epoch`."))
    profile_batch: int | list[int] | str = Field(0, description=(
        "Batches to profile: 0 (off), a batch number, or a range `[start, stop]` (also "
        "`'start,stop'`), counted from 1. Defaults to `0`."))
    embeddings_freq: NonNegInt = Field(0, description=(
        "Every how many epochs to write Embedding layers for the projector; 0 writes none. "
        "Defaults to `0`."))
    embeddings_metadata: str | dict[str, str] | None = Field(None, description=(
        "A metadata file for all Embedding layers, or a mapping layer name -> file. "
        "Defaults to `None`."))

    path_fields = ("log_dir",)
    summary = "Write TensorBoard event files (metrics, histograms, profiles)."
    # The step counters of batch-level summaries (keras/src/callbacks/tensorboard.py).
    state_attrs = ("_global_train_batch", "_global_test_batch")

    @field_validator("log_dir")
    @classmethod
    def _inside_run(cls, value: str) -> str:
        return check_run_path(value, "log_dir", "tensorboard")

    @field_validator("update_freq", mode="before")
    @classmethod
    def _freq(cls, value: Any) -> Any:
        if value in ("batch", "epoch") or (type(value) is int and value > 0):
            return value
        raise ValueError(
            f"update_freq must be 'epoch', 'batch' or a positive number of batches; "
            f"got {value!r}")

    @field_validator("profile_batch", mode="before")
    @classmethod
    def _profile(cls, value: Any) -> int | list[int]:
        return parse_profile_batch(value)

    @model_validator(mode="after")
    def _metadata_needs_freq(self) -> TensorBoardSpec:
        if self.embeddings_metadata is not None and self.embeddings_freq == 0:
            raise ValueError(
                "embeddings_metadata is used only when embeddings are written; set "
                "embeddings_freq to a positive number of epochs or remove embeddings_metadata")
        return self

    def batch_level(self, callback: Any = None) -> bool:
        return self.update_freq != "epoch" or self.profile_batch != 0

    def arguments(self, ctx: BuildContext) -> dict[str, Any]:
        """Keras's TensorBoard arguments; cbrun's subclass computes the weight histograms in
        NumPy (cbrun/engine/callbacks/tensorboard.py builds it)."""
        kwargs = self.kwargs(ctx)
        if isinstance(kwargs["profile_batch"], list):
            kwargs["profile_batch"] = tuple(kwargs["profile_batch"])
        return kwargs

    def run_files(self) -> list[PurePosixPath]:
        return [run_relative(self.log_dir)]

    def rewind(self, point: RewindPoint) -> int:
        folder = point.run_dir / self.log_dir
        if not folder.is_dir():
            return 0
        from cbrun.callbacks.tensorboard_trim import trim_event_files

        # Without a saved state every step-indexed event goes.
        batches = (point.state or {}).get("_global_train_batch", 0)
        iterations = point.optimizer_iterations if point.state is not None else 0
        return trim_event_files(folder, point.epochs_done, batches, iterations)
