"""`model: {path: start.keras}`: start from a saved Keras model (fine-tune, or continue
training elsewhere). Loaded with Keras's safe_mode on, which refuses files that would run
code (a Lambda layer's bytecode); `safe_mode: false` turns that off, and says so at start."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, ClassVar

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

    def preflight(self, folder: Path) -> list[tuple[tuple[Any, ...], str]]:
        """The file exists and is a .keras archive (a zip), found without TensorFlow."""
        path = folder / self.path
        if not path.is_file():
            return [(("model", "path"), (f"{self.path} does not exist (paths start at the config's "
                                        "folder)"))]
        if not zipfile.is_zipfile(path):
            return [(("model", "path"), (f"{self.path} is not a .keras file: model.save('x.keras') "
                                        "writes a zip archive, and this is not one"))]
        return []
