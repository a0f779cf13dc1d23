"""`source: parquet`: a table in a Parquet file, a folder of them (Spark's and pandas's
shards, hive-style partitions) or a glob, read with pyarrow."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from cbrun.config.data.table import TableSource


class ParquetData(TableSource):
    source: Literal["parquet"] = Field(description="A Parquet table: a file, a folder of "
                                                   "Parquet files, or a glob of them.")
    file_glob = "*.parquet"
