"""`model: {path: start.keras}`: start from a saved Keras model (fine-tune, or continue
training elsewhere). Loaded with Keras's safe_mode on, which refuses files that would run
code (a Lambda layer's bytecode); `safe_mode: false` turns that off, and says so at start."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, field_validator

from cbrun.config.base import StrictModel


class SavedModel(StrictModel):
    """A model saved with model.save(...keras), relative to the config's folder."""

    kind: ClassVar[str] = "path"

    path: str = Field(description="The .keras file, relative to the config's folder.")
    safe_mode: bool = Field(
        True, description="Refuse files that run code when loaded (Lambda layers). false "
                          "trusts the file: only for files you made. Defaults to true.")

    @field_validator("path")
    @classmethod
    def _keras_file(cls, value: str) -> str:
        if not value.endswith(".keras"):
            raise ValueError(f"path must be a .keras file (model.save('x.keras') writes one); "
                             f"got {value!r}")
        return value

    def output_names(self) -> list[str] | None:
        return None
