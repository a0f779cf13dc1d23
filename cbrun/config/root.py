"""The whole config file: the one typed object passed everywhere."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from cbrun.callbacks.csv_logger import CSVLoggerSpec
from cbrun.callbacks.registry import CallbackConfig
from cbrun.config.base import ManyProblems, StrictModel
from cbrun.config.compile import CompileConfig, optimizer_class
from cbrun.config.data import DataConfig, DigitsData, default_source
from cbrun.config.distribute import (
    DistributeConfig,
    NoStrategy,
    by_name,
    short_form_in_schema,
)
from cbrun.config.execution import execution_problems
from cbrun.config.fit import FitConfig
from cbrun.config.model import ModelConfig
from cbrun.config.outputs import output_problems
from cbrun.config.tracking import TrackingConfig
from cbrun.run.rundir import LOG_FILE

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class RunConfig(StrictModel):
    """A training run: model, data, callbacks. The run id is `<UTC yyyymmdd-HHMMSS>-<name>`."""

    name: str = Field(
        pattern=NAME_PATTERN,
        description="Run name: letters, digits, '_', '.', '-' (up to 64); part of the run id.")
    seed: int = Field(
        42, ge=0, lt=2**32, strict=True,
        description="Seeds Python, NumPy, TensorFlow and Keras, and the data order. "
                    "Defaults to 42.")
    backend: Literal["tensorflow", "jax"] = Field(
        "tensorflow",
        description="The Keras backend that trains: tensorflow (the default) or jax (install "
                    "cbrun[jax]; needed for distribute: data_parallel). See "
                    "docs/processes.md.")
    data: DataConfig = Field(
        default_factory=DigitsData,
        description="Where the samples come from: `source:` digits (default), npz, csv, "
                    "parquet, images, keras or python.")
    model: ModelConfig
    compile: CompileConfig
    fit: FitConfig
    callbacks: list[CallbackConfig] = Field(
        default_factory=list, description="Keras callbacks, each `{type: Name, ...params}`.")
    distribute: DistributeConfig = Field(
        default_factory=NoStrategy,
        description="Devices that train the model: none (the default device), one_device, "
                    "or mirrored (one replica per device; data.batch_size is the global "
                    "batch, split between them), on backend: tensorflow; data_parallel "
                    "(several processes or machines) on backend: jax. See docs/devices.md.",
        json_schema_extra=short_form_in_schema)
    tracking: TrackingConfig | None = Field(
        None, description="MLflow and W&B runs that mirror this run (see docs/tracking.md).")

    @field_validator("data", mode="before")
    @classmethod
    def _digits_by_default(cls, value: Any) -> Any:
        return default_source(value)

    @field_validator("distribute", mode="before")
    @classmethod
    def _strategy_by_name(cls, value: Any) -> Any:
        return by_name(value)

    @model_validator(mode="after")
    def _outputs_fit(self) -> RunConfig:
        found = output_problems(self) + execution_problems(self)
        if found:
            raise ManyProblems(found)
        return self

    def writes_run_log(self) -> bool:
        """Whether a declared CSVLogger writes the run's log.csv (else cbrun adds a writer)."""
        return any(PurePosixPath(LOG_FILE) in spec.run_files() for spec in self.callbacks)

    def tracked_callbacks(self) -> list[CallbackConfig]:
        """The specs whose callbacks a run builds, in order: the user's, then cbrun's own
        log.csv writer when none of theirs writes it. Saved states line up with this list."""
        own = [] if self.writes_run_log() else [CSVLoggerSpec(type="CSVLogger")]
        return [*self.callbacks, *own]

    def optimizer_settings(self) -> tuple[str, dict[str, Any]]:
        """(Keras class name, keyword arguments) of the optimizer, however it was written."""
        spec = self.compile.optimizer
        if isinstance(spec, str):
            return optimizer_class(spec), {}
        return spec.type, spec.kwargs
