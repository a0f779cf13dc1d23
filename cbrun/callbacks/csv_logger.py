"""CSVLogger: one CSV row per epoch."""

from __future__ import annotations

import csv
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import Field, field_validator

from cbrun.callbacks.base import CallbackSpec, RewindPoint, check_run_file, run_relative
from cbrun.config.base import BuildContext
from cbrun.run.logs import sniff_delimiter
from cbrun.run.rundir import atomic_write_bytes


class CSVLoggerSpec(CallbackSpec):
    """Write every epoch's logged values as one row of a CSV file.

    Same parameters as `keras.callbacks.CSVLogger`; `filename` is relative to the run
    directory. Keras has no default filename; cbrun's is `log.csv`.
    """

    type: Literal["CSVLogger"]
    filename: str = Field("log.csv", description=(
        "The CSV file, relative to the run directory. Defaults to `log.csv`."))
    separator: str = Field(",", description=(
        "The one character between columns. Defaults to `,`."))
    append: bool = Field(False, description=(
        "Append to an existing file instead of overwriting it. Defaults to `false`."))

    path_fields = ("filename",)
    summary = "Write one CSV row per epoch with every logged value."
    # The column names, fixed by the first row; a resumed run appends rows under them.
    state_attrs = ("keys",)

    @field_validator("filename")
    @classmethod
    def _inside_run(cls, value: str) -> str:
        return check_run_file(value, "filename", "log.csv")

    @field_validator("separator")
    @classmethod
    def _one_char(cls, value: str) -> str:
        # Keras hands it to csv.writer as `delimiter`, which takes exactly one character.
        if len(value) != 1 or value in '"\r\n':
            raise ValueError(
                f"separator must be exactly one character other than a quote or a line "
                f"break, such as ',' ';' or '\\t'; got {value!r}")
        return value

    def build(self, ctx: BuildContext) -> Any:
        import keras

        kwargs = self.kwargs(ctx)
        if ctx.resuming:  # the file was cut back to the restored epoch; rows continue it
            kwargs["append"] = True
        return keras.callbacks.CSVLogger(**kwargs)

    def run_files(self) -> list[PurePosixPath]:
        return [run_relative(self.filename)]

    def rewind(self, point: RewindPoint) -> int:
        return truncate_csv(point.run_dir / self.filename, point.epochs_done)


def truncate_csv(path: Path, epochs_done: int) -> int:
    """Keep the header and the rows of epochs before `epochs_done` (0-based epoch column);
    returns how many rows were dropped. Rows past the saved state are rewritten on resume."""
    if not path.exists():
        return 0
    # Bytes as they are (surrogateescape round-trips anything): Keras ends rows with \r\n,
    # and the rows kept must stay byte-identical.
    text = path.read_bytes().decode("utf-8", errors="surrogateescape")
    lines = text.splitlines(keepends=True)
    if not lines:
        return 0
    separator = sniff_delimiter(lines[0])
    header = next(csv.reader([lines[0]], delimiter=separator))
    if "epoch" not in header:
        return 0
    column = header.index("epoch")
    kept = [lines[0]]
    for line in lines[1:]:
        cells = next(csv.reader([line], delimiter=separator), [])
        try:
            epoch = int(float(cells[column]))
        except (IndexError, ValueError):
            break  # a half-written last row
        if epoch >= epochs_done:
            break
        kept.append(line if line.endswith("\n") else line + "\r\n")
    dropped = len(lines) - len(kept)
    if dropped:
        atomic_write_bytes(path, "".join(kept).encode("utf-8", errors="surrogateescape"))
    return dropped
