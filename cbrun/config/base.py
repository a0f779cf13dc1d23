"""Shared pieces of every config model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Unknown keys are errors, never silently dropped."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


@dataclass(frozen=True)
class BuildContext:
    """What a callback spec needs to turn itself into a Keras object.

    run_dir: the run directory; relative paths in callbacks resolve inside it.
    config_dir: the folder of the config file; `Custom` callbacks import from it.
    resuming: True when `cbrun resume` builds the callbacks for a continued run.
    seed: the run's seed.
    """

    run_dir: Path
    config_dir: Path
    resuming: bool = False
    seed: int = 42

    def resolve(self, relative: str) -> Path:
        return self.run_dir / relative
