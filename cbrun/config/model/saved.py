"""`model: {path: start.keras}`: start from a saved Keras model (fine-tune, or continue
training elsewhere). Loaded with Keras's safe_mode on, which refuses files that would run
code (a Lambda layer's bytecode); `safe_mode: false` turns that off, and says so at start."""

from __future__ import annotations

import json
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
        """The file exists and is a .keras archive (a zip) with a model's config.json and
        its weights, read without TensorFlow: what Keras would fail on as it loads."""
        path = folder / self.path
        if not path.is_file():
            return [(("model", "path"), (f"{self.path} does not exist (paths start at the config's "
                                        "folder)"))]
        problem = archive_problem(path)
        return [(("model", "path"), f"{self.path} {problem}")] if problem else []


_SAVED = "model.save('x.keras') writes one"
_HDF5 = b"\x89HDF\r\n\x1a\n"


def archive_problem(path: Path) -> str | None:
    """Why `path` is not a model archive Keras can load ("is not a zip archive..."), or
    None. Keras reads config.json (a JSON object naming the model's class) and the
    weights, model.weights.h5 (HDF5) or model.weights.npz."""
    if not zipfile.is_zipfile(path):
        return f"is not a .keras file: {_SAVED} (a zip archive), and this is not one"
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if "config.json" not in names:
                return (f"holds no config.json, so it is no saved Keras model ({_SAVED}); "
                        f"it holds: {', '.join(names[:5]) or 'nothing'}")
            config = _config_problem(archive.read("config.json"))
            if config:
                return config
            if "model.weights.h5" in names:
                return _weights_problem(archive)
            if "model.weights.npz" not in names:
                return "holds no weights (model.weights.h5 or model.weights.npz)"
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        return f"is a damaged zip archive ({exc})"
    return None


def _config_problem(text: bytes) -> str | None:
    try:
        config = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        return f"has a config.json that is not JSON ({exc})"
    if not isinstance(config, dict):
        kind = {list: "an array", str: "a string", bool: "true or false", type(None): "null"}
        return (f"has a config.json that holds {kind.get(type(config), 'a number')}, not a "
                'Keras model\'s config ({"class_name": ..., "config": {...}})')
    missing = [key for key, kind in (("class_name", str), ("config", dict))
               if not isinstance(config.get(key), kind)]
    if missing:
        return (f"has a config.json without {' or '.join(missing)}, so it is not a Keras "
                'model\'s config ({"class_name": ..., "config": {...}})')
    return None


def _weights_problem(archive: zipfile.ZipFile) -> str | None:
    """HDF5 checks its own length at opening: a file cut short or overwritten is named now
    rather than when Keras reads it."""
    with archive.open("model.weights.h5") as member:
        if member.read(len(_HDF5)) != _HDF5:
            return "has weights (model.weights.h5) that are not an HDF5 file"
    import h5py

    try:
        with archive.open("model.weights.h5") as member, h5py.File(member, "r"):
            return None
    except (OSError, ValueError) as exc:
        return f"has weights (model.weights.h5) that HDF5 cannot read ({first_line(exc)})"


def first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
