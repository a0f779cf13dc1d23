"""`source: parquet`: a table in a Parquet file, read with pyarrow."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from cbrun.config.data.table import TableSource


class ParquetData(TableSource):
    source: Literal["parquet"] = Field(description="A Parquet table.")
    file_glob = "*.parquet"

    def schema_columns(self, path: Path) -> list[str]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return list(pq.read_schema(path).names)
        except pa.ArrowInvalid as exc:
            raise ValueError(str(exc)) from None

    def read(self, path: Path, columns: list[str] | None = None):
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path, columns=columns)
        except pa.ArrowInvalid as exc:
            raise ValueError(str(exc)) from None
