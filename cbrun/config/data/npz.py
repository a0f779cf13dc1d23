"""`source: npz`: arrays in a numpy .npz archive, one or several named inputs and outputs.

The preflight reads only the archive's array headers (shape, dtype), never the arrays."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import AliasChoices, Field

from cbrun.config.data.common import FileSource, Found, Names, names_of
from cbrun.suggest import did_you_mean


def npz_headers(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """{array name: (shape, dtype)} of a .npz, from the headers alone. Raises ValueError
    for a file that is not one."""
    if not zipfile.is_zipfile(path):
        raise ValueError("is not a .npz archive (numpy.savez writes one)")
    found = {}
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            if not member.endswith(".npy"):
                continue
            with archive.open(member) as handle:
                major, _ = np.lib.format.read_magic(handle)
                read = (np.lib.format.read_array_header_1_0 if major == 1
                        else np.lib.format.read_array_header_2_0)
                shape, _, dtype = read(handle)
            found[member[:-4]] = (tuple(shape), dtype)
    return found


class NpzData(FileSource):
    """Arrays from .npz files: `x` and `y` name the arrays (a mapping of names for a model
    with several inputs or outputs, e.g. x: {story: s, question: q})."""

    source: Literal["npz"] = Field(description="Arrays in a .npz file.")
    x: Names = Field("x", validation_alias=AliasChoices("x", "x_key"),
                     description="The array of inputs (or {input name: array name}). "
                                 "Defaults to x; `x_key` is the older spelling.")
    y: Names = Field("y", validation_alias=AliasChoices("y", "y_key"),
                     description="The array of targets (or {output name: array name}). "
                                 "Defaults to y; `y_key` is the older spelling.")
    file_glob = "*.npz"

    def named_inputs(self) -> tuple[str, list[str]] | None:
        return ("x", list(self.x)) if isinstance(self.x, dict) else None

    def named_outputs(self) -> tuple[str, list[str]] | None:
        return ("y", list(self.y)) if isinstance(self.y, dict) else None

    def sample_shapes(self, folder: Path):
        headers = npz_headers(folder / self.path)
        if isinstance(self.x, str):
            return {None: list(headers[self.x][0][1:])}
        return {key: list(headers[name][0][1:]) for key, name in self.x.items()}

    def file_labels(self, folder: Path):
        if not isinstance(self.y, str):
            return None
        try:
            with np.load(folder / self.path, allow_pickle=False) as archive:
                return archive[self.y]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            return None  # the preflight says what is wrong with the file

    def preflight(self, folder: Path, *, seed: int) -> Found:
        found = super().preflight(folder, seed=seed)
        if found:
            return found
        for field, value in self.paths().items():
            found += self._check_file(field, folder / value)
        return found

    def _check_file(self, field: str, path: Path) -> Found:
        loc = ("data", field)
        try:
            headers = npz_headers(path)
        except (ValueError, OSError, zipfile.BadZipFile) as exc:
            return [(loc, f"{path} {exc}")]
        problems: Found = []
        lengths = {}
        for key in ("x", "y"):
            for name in names_of(getattr(self, key)):
                if name not in headers:
                    problems.append((loc, (f"{path.name} has no array {name!r}"
                                          f"{did_you_mean(name, list(headers))}; it has: "
                                          f"{', '.join(headers) or 'no arrays'} "
                                          f"(set data.{key})")))
                    continue
                shape, dtype = headers[name]
                if not shape:
                    problems.append((loc, (f"array {name!r} in {path.name} has 0 dimensions "
                                          "(one value); it must hold one row per sample")))
                elif dtype.hasobject:
                    problems.append((loc, (f"array {name!r} in {path.name} holds Python "
                                          "objects, which cbrun does not unpickle; save "
                                          "numbers or fixed-width strings")))
                else:
                    lengths[name] = shape[0]
        if len(set(lengths.values())) > 1:
            sizes = ", ".join(f"{k}: {v}" for k, v in lengths.items())
            problems.append((loc, (f"the arrays in {path.name} hold different numbers of "
                                  f"samples ({sizes})")))
        elif field == "path" and lengths and not next(iter(lengths.values())):
            problems.append((loc, f"the arrays in {path.name} hold no samples"))
        return problems
