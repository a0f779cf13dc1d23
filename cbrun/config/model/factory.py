"""`model: {factory: package.module:build, params: {...}}`: a model built by the user's code.

THIS RUNS YOUR CODE: training imports the module (the config's folder is searched first)
and calls the function with `params` as keyword arguments; it must return a keras.Model.
cbrun compiles, trains, checkpoints and resumes it like any other. Only the import path and
the parameter names are checked before TensorFlow is imported.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, field_validator

from cbrun.config.base import StrictModel


class FactoryModel(StrictModel):
    """A keras.Model returned by your function (runs your code)."""

    kind: ClassVar[str] = "factory"

    factory: str = Field(description="`package.module:function`; the config's folder is "
                                     "searched first, so `models:build` finds models.py next "
                                     "to the YAML. The function returns a keras.Model.")
    params: dict[str, Any] = Field(default_factory=dict,
                                   description="Keyword arguments for the function.")

    @field_validator("factory")
    @classmethod
    def _import_path(cls, value: str) -> str:
        module, sep, attr = value.partition(":")
        if not sep or not all(p.isidentifier() for p in module.split(".")) \
                or not attr.isidentifier():
            raise ValueError(f"factory must be 'module:function' (e.g. 'models:build' for a "
                             f"models.py next to the config); got {value!r}")
        return value

    @field_validator("params")
    @classmethod
    def _keyword_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        bad = [key for key in value if not (isinstance(key, str) and key.isidentifier())]
        if bad:
            raise ValueError(f"params keys become keyword arguments, so they must be Python "
                             f"identifiers; got {bad[0]!r}")
        return value

    def output_names(self) -> list[str] | None:
        return None  # known only once built; compile's per-output keys name them
