"""`source: csv`: a table in a CSV file (or a folder or glob of them), read with pyarrow."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from cbrun.config.data.table import TableSource


class CsvData(TableSource):
    source: Literal["csv"] = Field(description="A CSV table with a header row: a file, a "
                                               "folder of CSV files, or a glob of them.")
    delimiter: str = Field(",", min_length=1, max_length=1,
                           description="The character between fields. Defaults to ','.")
    decimal: Literal[".", ","] = Field(
        ".", description="The decimal mark of numbers: '.' or ',' (2,5 in a file written "
                         "with a semicolon delimiter). Defaults to '.'.")
    file_glob = "*.csv"

    def csv_options(self) -> dict:
        return {"delimiter": self.delimiter, "decimal": self.decimal}
