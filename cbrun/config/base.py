"""Shared pieces of every config model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Discriminator, Tag


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


# The two branches of a `name | {type: ...}` field, as pydantic names them in an error's
# location (config/pydantic_errors.py drops them: users never wrote them).
BY_NAME, AS_MAPPING = "by-name", "as-mapping"
BRANCH_TAGS = (BY_NAME, AS_MAPPING)


def _name_or_mapping(value: Any) -> str:
    return AS_MAPPING if isinstance(value, (dict, BaseModel)) else BY_NAME


def name_or(model: type[BaseModel]) -> Any:
    """`'adam'` or `{type: Adam, ...}`: the branch is chosen by what the user wrote, so an
    error is reported once, in the terms of that branch."""
    return Annotated[Annotated[str, Tag(BY_NAME)] | Annotated[model, Tag(AS_MAPPING)],
                     Discriminator(_name_or_mapping)]


@dataclass(frozen=True)
class DataView:
    """The run's data as a callback may read it (PredictionSamples does): `(inputs, labels)`
    per split name (`train`, `validation`, and `test` where the source has one), the class
    names where the source knows them, and the run's seed for choosing samples."""

    splits: dict[str, tuple[Any, Any]]
    seed: int = 0
    class_names: list[str] | None = None

    def split(self, name: str) -> tuple[Any, Any] | None:
        return self.splits.get(name)


@dataclass(frozen=True)
class BuildContext:
    """What a callback spec needs to turn itself into a Keras object.

    run_dir: the run directory; relative paths in callbacks resolve inside it.
    config_dir: the folder of the config file; `Custom` callbacks import from it.
    resuming: True when `cbrun resume` builds the callbacks for a continued run.
    data: the run's data (None where no data is loaded, e.g. when rewinding files).
    """

    run_dir: Path
    config_dir: Path
    resuming: bool = False
    data: DataView | None = None

    def resolve(self, relative: str) -> Path:
        return self.run_dir / relative


class ManyProblems(ValueError):
    """Raised by a validator that found several problems, each at its own location
    (relative to the object validated): pydantic keeps the exception in the error's context,
    and the loader reports every entry at its own line and column."""

    def __init__(self, problems: list[tuple[tuple[Any, ...], str]],
                 unknown_keys: tuple[tuple[Any, ...], ...] = ()):
        self.problems = list(problems)
        self.unknown_keys = unknown_keys  # locations of keys that should not be there
        super().__init__(self.problems[0][1] if self.problems else "invalid")
