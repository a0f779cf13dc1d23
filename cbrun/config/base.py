"""Shared pieces of every config model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict


def is_number(value: Any) -> bool:
    """An int or float as YAML gives them; `true` is no number, though Python says so."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class StrictModel(BaseModel):
    """Unknown keys are errors, never silently dropped."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class KerasObjectSpec(StrictModel):
    """`{type: ClassName, ...}`: a Keras class and its keyword arguments, every key besides
    `type`. Subclasses check the names they accept."""

    model_config = ConfigDict(extra="allow")

    type: str

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


@dataclass(frozen=True)
class BuildContext:
    """What a callback spec needs to turn itself into a Keras object.

    run_dir: the run directory; relative paths in callbacks resolve inside it.
    config_dir: the folder of the config file; `Custom` callbacks import from it.
    resuming: True when `cbrun resume` builds the callbacks for a continued run.
    """

    run_dir: Path
    config_dir: Path
    resuming: bool = False

    def resolve(self, relative: str) -> Path:
        return self.run_dir / relative
