"""CSVLogger: one CSV row per epoch."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from cbrun.callbacks.base import CallbackSpec, check_run_file
from cbrun.config.base import BuildContext


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

        return keras.callbacks.CSVLogger(**self.kwargs(ctx))
