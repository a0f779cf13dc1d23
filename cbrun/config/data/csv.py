"""`source: csv`: a table in a CSV file, read with pyarrow."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from cbrun.config.data.table import TableSource


class CsvData(TableSource):
    source: Literal["csv"] = Field(description="A CSV table with a header row.")
    delimiter: str = Field(",", min_length=1, max_length=1,
                           description="The character between fields. Defaults to ','.")
    decimal: Literal[".", ","] = Field(
        ".", description="The decimal mark of numbers: '.' or ',' (2,5 in a file written "
                         "with a semicolon delimiter). Defaults to '.'.")
    file_glob = "*.csv"

    def _options(self):
        import pyarrow.csv as pacsv

        return pacsv.ParseOptions(delimiter=self.delimiter)

    def schema_columns(self, path: Path) -> list[str]:
        import pyarrow as pa
        import pyarrow.csv as pacsv

        from cbrun.data.tables import csv_problem

        try:
            with pacsv.open_csv(path, parse_options=self._options()) as reader:
                return list(reader.schema.names)
        except pa.ArrowInvalid as exc:
            raise ValueError(csv_problem(path, self.delimiter, exc)) from None

    def read(self, path: Path, columns: list[str] | None = None):
        from cbrun.data.tables import read_csv

        # The columns this source uses keep their numbers; one left out may hold anything.
        if columns is None:
            groups = self.feature_groups(self.schema_columns(path))
            columns = self.label_columns() + [
                c for g in (groups.values() if isinstance(groups, dict) else [groups])
                for c in g]
        return read_csv(path, self.delimiter, self.decimal, columns=columns)
