"""A table's files: one file, a folder of shards (Spark's part-*.parquet, pandas's chunks,
hive-style `key=value/` folders) or a glob, read through pyarrow's dataset API. No
TensorFlow: the config's checks, `cbrun init`, `data check` and the run read the same
files in the same order.

The order of the files is their sorted path (relative to the folder), and a row's
position in the table is its place in that order: what the held-out rows, the epoch
orders and every message's row number count. Files whose names start with `.` or `_`
(Spark's `_SUCCESS`, `.crc` files) are not data and are skipped, as pyarrow skips them.

Every shard's schema is read before anything else (a Parquet footer, a CSV header and
its first block): a file that is not a table, a damaged one, and a shard whose columns
differ from the first's are named, each with its path.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EXTENSIONS = {"parquet": (".parquet", ".pq", ".parq"), "csv": (".csv", ".csv.gz", ".csv.bz2")}
GLOB_CHARS = "*?["


class ShardProblem(ValueError):
    """What is wrong with a table's files: one line, naming the file."""


def is_glob(value: str) -> bool:
    return any(c in value for c in GLOB_CHARS)


def _hidden(relative: Path) -> bool:
    return any(part.startswith((".", "_")) for part in relative.parts)


def list_files(value: str, folder: Path, source: str) -> tuple[Path, list[Path]]:
    """(the root that names and partitions are relative to, the table's files in order) of
    a `path` value: a file, a folder of shards, or a glob. ShardProblem when there is no
    such file, a folder holds no table, or a folder holds a file of another kind."""
    full = folder / value
    suffixes = EXTENSIONS[source]
    if is_glob(value):
        found = sorted(Path(p) for p in glob.glob(str(full), recursive=True))
        files = [p for p in found if p.is_file() and not p.name.startswith((".", "_"))]
        if not files:
            raise ShardProblem(f"{value!r} matches no file (a glob, relative to the folder of "
                               f"the config file: {folder.absolute()})")
        return Path(os.path.commonpath([str(p.parent) for p in files])), files
    if full.is_file():
        return full.parent, [full]
    if not full.is_dir():
        raise ShardProblem(f"{value!r} does not exist")
    files, strangers = [], []
    for path in sorted(full.rglob("*")):
        relative = path.relative_to(full)
        if _hidden(relative) or not path.is_file():
            continue
        (files if path.name.lower().endswith(suffixes) else strangers).append(path)
    if strangers:
        shown = ", ".join(str(p.relative_to(folder)) for p in strangers[:3])
        more = f" and {len(strangers) - 3} more" if len(strangers) > 3 else ""
        raise ShardProblem(f"the folder {value} holds {shown}{more}, which "
                           f"{'are' if len(strangers) > 1 else 'is'} not "
                           f"{' or '.join(suffixes)}; move {'them' if len(strangers) > 1 else 'it'}"
                           f" out, or give a glob of the table's files ({value}/*{suffixes[0]})")
    if not files:
        raise ShardProblem(f"the folder {value} holds no {' or '.join(suffixes)} file")
    return full, files


def folder_source(path: Path) -> str | None:
    """parquet or csv when `path` is a folder holding only that kind of table file, else
    None (a folder of images, say)."""
    for source in EXTENSIONS:
        try:
            list_files(".", path, source)
        except ShardProblem:
            continue
        return source
    return None


def hive_keys(root: Path, files: list[Path]) -> list[str]:
    """The partition keys of hive-style folders (`year=2024/month=3/part-0.parquet`):
    names that every file's folders give, in order; none for flat folders."""
    keys = None
    for path in files:
        parts = path.relative_to(root).parts[:-1]
        mine = [p.split("=", 1)[0] for p in parts if "=" in p]
        if len(mine) != len(parts):
            return []
        if keys is None:
            keys = mine
        elif mine != keys:
            return []
    return keys or []


def kind_of(arrow_type) -> str:
    """number, bool, text or the type's own name: what must agree across shards."""
    import pyarrow as pa

    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type):
        return "number"
    if pa.types.is_boolean(arrow_type):
        return "bool"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "text"
    if pa.types.is_null(arrow_type):
        return "empty"
    return str(arrow_type)


def _widest(types: list) -> Any:
    """One type for a column typed differently but compatibly in different shards."""
    import pyarrow as pa

    kinds = [t.value_type if pa.types.is_dictionary(t) else t for t in types]
    kinds = [t for t in kinds if not pa.types.is_null(t)] or kinds
    if all(t == kinds[0] for t in kinds):
        return kinds[0]
    if all(pa.types.is_integer(t) for t in kinds):
        return pa.int64()
    if all(pa.types.is_integer(t) or pa.types.is_floating(t) for t in kinds):
        return pa.float64()
    if all(pa.types.is_string(t) or pa.types.is_large_string(t) for t in kinds):
        return pa.large_string()
    return kinds[0]


@dataclass
class Shards:
    """The files of one table (one `path`, `validation_path` or `test_path`), their
    schema, and the pieces they are read by."""

    value: str  # as the config gives it
    folder: Path  # the config's folder, which `value` starts at
    source: str  # csv | parquet
    root: Path
    files: list[Path]
    schema: Any  # pyarrow.Schema: every shard's columns, each typed for all of them
    hive: list[str] = field(default_factory=list)
    csv_options: dict[str, Any] = field(default_factory=dict)  # delimiter, decimal

    def name(self, path: Path) -> str:
        """A file as the user sees it: relative to the config's folder when inside it."""
        try:
            return str(path.relative_to(self.folder))
        except ValueError:
            return str(path)

    @property
    def shown(self) -> str:
        return self.name(self.files[0]) if len(self.files) == 1 else \
            f"{self.value} ({len(self.files)} files)"

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names)

    def file_format(self):
        import pyarrow.csv as pacsv
        import pyarrow.dataset as ds

        if self.source == "parquet":
            return ds.ParquetFileFormat()
        used = {name: self.schema.field(name).type for name in self.schema.names
                if name not in self.hive}
        return ds.CsvFileFormat(
            parse_options=pacsv.ParseOptions(delimiter=self.csv_options.get("delimiter", ",")),
            convert_options=pacsv.ConvertOptions(
                column_types=used, strings_can_be_null=True,
                decimal_point=self.csv_options.get("decimal", ".")))

    def dataset(self):
        """pyarrow's dataset of the files, in their order, with the one schema."""
        import pyarrow.dataset as ds

        partitioning = None
        if self.hive:
            partitioning = ds.partitioning(
                schema=self._hive_schema(), flavor="hive")
        return ds.dataset([str(p) for p in self.files], schema=self.schema,
                          format=self.file_format(), partitioning=partitioning,
                          partition_base_dir=str(self.root))

    def _hive_schema(self):
        import pyarrow as pa

        return pa.schema([self.schema.field(k) for k in self.hive])

    def fragments(self) -> list:
        """One fragment per file, in the files' order (a dataset lists them as given)."""
        return list(self.dataset().get_fragments())


def _file_schema(path: Path, shards: Shards):
    """The schema one file declares, or ShardProblem naming it."""
    import pyarrow as pa

    shown = shards.name(path)
    try:
        if shards.source == "parquet":
            import pyarrow.parquet as pq

            return pq.read_schema(path)
        import pyarrow.csv as pacsv

        from cbrun.data.tables import csv_problem

        options = shards.csv_options
        try:
            with pacsv.open_csv(path, parse_options=pacsv.ParseOptions(
                    delimiter=options.get("delimiter", ",")), convert_options=pacsv.ConvertOptions(
                    strings_can_be_null=True, decimal_point=options.get("decimal", "."))) as reader:
                return reader.schema
        except pa.ArrowInvalid as exc:
            raise ShardProblem(f"{shown} is not a readable csv table: "
                               f"{csv_problem(path, options.get('delimiter', ','), exc)}") from None
    except (pa.ArrowInvalid, OSError) as exc:
        text = " ".join(str(exc).split()) or type(exc).__name__
        raise ShardProblem(f"{shown} is not a readable {shards.source} table: "
                           f"{text[:200]}") from None


def open_shards(value: str, folder: Path, source: str, used: list[str] | None = None,
                **csv_options) -> Shards:
    """The table `value` names, with every file's schema read and compared: ShardProblem
    for a file that is not a table, a column named twice, or a shard whose `used` columns
    (all columns when None) are missing or of another kind than in the first file."""
    import pyarrow as pa

    root, files = list_files(value, folder, source)
    shards = Shards(value, folder, source, root, files, pa.schema([]),
                    csv_options={k: v for k, v in csv_options.items() if v is not None})
    shards.hive = hive_keys(root, files) if len(files) > 1 or root != files[0].parent else []
    schemas = [_file_schema(path, shards) for path in files]
    first = schemas[0]
    for path, schema in zip(files, schemas, strict=True):
        names = schema.names
        twice = next((c for c in names if names.count(c) > 1), None)
        if twice is not None:
            places = ", ".join(str(i + 1) for i, c in enumerate(names) if c == twice)
            raise ShardProblem(f"{shards.name(path)} has {names.count(twice)} columns named "
                               f"{twice!r} (columns {places}); give each column a name of its "
                               "own")
    wanted = first.names if used is None else [c for c in used if c in first.names]
    for path, schema in zip(files[1:], schemas[1:], strict=True):
        for column in wanted:
            if column not in schema.names:
                raise ShardProblem(
                    f"{shards.name(path)} has no column {column!r}, which "
                    f"{shards.name(files[0])} has: every file of the table needs the same "
                    f"columns (its columns: {', '.join(schema.names)})")
            mine, theirs = schema.field(column).type, first.field(column).type
            if kind_of(mine) != kind_of(theirs) and "empty" not in (kind_of(mine),
                                                                     kind_of(theirs)):
                raise ShardProblem(
                    f"{shards.name(path)} holds column {column!r} as {kind_of(mine)} ({mine}), "
                    f"but {shards.name(files[0])} holds it as {kind_of(theirs)} ({theirs}): "
                    "every file of the table needs the same columns of the same kind")
    fields = []
    for name in first.names:
        types = [s.field(name).type for s in schemas if name in s.names]
        fields.append(pa.field(name, _widest(types)))
    fields += [pa.field(key, _partition_type(root, files, key)) for key in shards.hive
               if key not in first.names]
    shards.schema = pa.schema(fields)
    return shards


def _partition_type(root: Path, files: list[Path], key: str):
    """int64 when every file's `key=value` folder holds an integer, else text."""
    import pyarrow as pa

    values = {part.split("=", 1)[1] for p in files for part in p.relative_to(root).parts[:-1]
              if part.split("=", 1)[0] == key}
    try:
        [int(v) for v in values]
    except ValueError:
        return pa.string()
    return pa.int64()


@dataclass(frozen=True)
class Piece:
    """What a table is read by: a Parquet row group, or a whole CSV file (which cannot be
    entered in the middle). `start`: the table position of its first row."""

    file: int  # index into Shards.files
    group: int | None  # the row group, None for a whole file
    start: int
    rows: int


def parquet_pieces(shards: Shards) -> list[Piece]:
    """Every row group of every file, from the footers alone."""
    import pyarrow.parquet as pq

    pieces, start = [], 0
    for index, path in enumerate(shards.files):
        meta = pq.read_metadata(path)
        for group in range(meta.num_row_groups):
            rows = meta.row_group(group).num_rows
            if rows:
                pieces.append(Piece(index, group, start, rows))
            start += rows
    return pieces


def parquet_rows(shards: Shards) -> int:
    import pyarrow.parquet as pq

    return sum(pq.read_metadata(p).num_rows for p in shards.files)


def estimated_bytes(shards: Shards, columns: list[str]) -> tuple[int, int | None]:
    """(what `columns` of every row take in memory once read, the rows when known without
    reading them): a Parquet file's uncompressed column sizes, a CSV file's own size."""
    import pyarrow.parquet as pq

    if shards.source != "parquet":
        return sum(p.stat().st_size for p in shards.files), None
    total = rows = 0
    for path in shards.files:
        meta = pq.read_metadata(path)
        rows += meta.num_rows
        names = [meta.schema.column(i).path for i in range(meta.num_columns)]
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            total += sum(group.column(i).total_uncompressed_size
                         for i, name in enumerate(names) if name in columns)
    return total, rows
