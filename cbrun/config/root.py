"""The whole config file: the one typed object passed everywhere."""

from __future__ import annotations

from pydantic import Field

from cbrun.callbacks.registry import CallbackConfig
from cbrun.config.base import StrictModel
from cbrun.config.compile import CompileConfig
from cbrun.config.data import DataConfig
from cbrun.config.fit import FitConfig
from cbrun.config.model import ModelConfig

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class RunConfig(StrictModel):
    """A training run: model, data, callbacks. The run id is `<UTC yyyymmdd-HHMMSS>-<name>`."""

    name: str = Field(
        pattern=NAME_PATTERN,
        description="Run name: letters, digits, '_', '.', '-' (up to 64); part of the run id.")
    seed: int = Field(
        42, ge=0, lt=2**32,
        description="Seeds Python, NumPy, TensorFlow and Keras, and the data order. "
                    "Defaults to 42.")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig
    compile: CompileConfig
    fit: FitConfig
    callbacks: list[CallbackConfig] = Field(
        default_factory=list, description="Keras callbacks, each `{type: Name, ...params}`.")
