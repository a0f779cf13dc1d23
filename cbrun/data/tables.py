"""Tables (CSV, Parquet) to arrays, without TensorFlow: the same code checks a config
before a run directory exists and feeds the run.

Numeric columns stay numbers. A string column is a category: its vocabulary is the sorted
values of the training rows, value i maps to id i + 1 and a value never seen in training
to 0. A string label maps to its class index, and a class the training rows never show is
an error (the model would have no output for it). What was learned is returned as
`artifacts`, saved under runs/<id>/data/, and `encode_table` re-applies it to new rows.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

Arrays = Any  # an ndarray, or {name: ndarray} for named inputs or outputs


# --- reading a CSV ---------------------------------------------------------------------
# pyarrow reads a CSV in blocks (1 MB), typing each column by the first one: a row that
# breaks the file further on fails the read with the row's text but not its line, and a
# stray value in a column of numbers quietly turns the whole column into text (a byte that
# is not UTF-8, into bytes). Each is named here, by line.

_SHOWN = 120  # characters of pyarrow's message kept when no line can be named


def read_csv(path: Path, delimiter: str = ",", decimal: str = ".",
             strings_can_be_null: bool = True, columns: list[str] | None = None):
    """The table of a CSV file, or a ValueError whose one line says where the file goes
    wrong. `columns`: those whose numbers must stay numbers (default: all)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    parse = pacsv.ParseOptions(delimiter=delimiter)
    try:
        # An empty field of a text column is a missing value, as it is in a number column.
        table = pacsv.read_csv(path, parse_options=parse, convert_options=pacsv.ConvertOptions(
            strings_can_be_null=strings_can_be_null, decimal_point=decimal))
    except pa.ArrowInvalid as exc:
        raise ValueError(csv_problem(path, delimiter, exc)) from None
    late = late_problem(path, table, delimiter, decimal, columns)
    if late:
        raise ValueError(late)
    return table


def csv_problem(path: Path, delimiter: str, exc: Exception) -> str:
    """pyarrow's parse error made one line: the row at fault, by line, when a scan finds it."""
    found = row_problem(path, delimiter)
    if found is not None:
        return str(found)
    text = " ".join(str(exc).split())
    return text if len(text) <= _SHOWN else text[:_SHOWN] + " ..."


# The longest value the scan reads: a quote never closed swallows the rest of the file.
_LONGEST = 16 << 20


@dataclass
class RowProblem:
    """The first row of a CSV that does not have one field per column."""

    line: int  # where the row starts (1-based, the header is line 1)
    fields: int | None  # None: a value longer than _LONGEST (a quote never closed)
    header: int
    ends: int  # the line where the row ends: past `line` when a quoted value ran on

    def __str__(self) -> str:
        if self.ends > self.line or self.fields is None:
            reach = (f"to line {self.ends}" if self.fields is not None else
                     f"past line {self.ends} (more than {_LONGEST >> 20} MiB)")
            count = (f" and the row has {self.fields} field{'s' * (self.fields != 1)} where "
                     f"the header has {self.header}" if self.fields is not None else "")
            return (f"line {self.line} opens a quoted value that runs on {reach}{count}; "
                    'a quote inside a value must be doubled ("") or the whole value quoted')
        return (f"line {self.line} has {self.fields} field{'s' * (self.fields != 1)} where the "
                f"header has {self.header}; every row needs one field per column")


def row_problem(path: Path, delimiter: str) -> RowProblem | None:
    """The first row whose field count differs from the header's, read as Python's csv
    module reads it (quotes as pyarrow reads them), or None."""
    limit = csv.field_size_limit(_LONGEST)
    try:
        with path.open(newline="", encoding="utf-8", errors="replace") as handle:
            rows = csv.reader(handle, delimiter=delimiter)
            start, header = 1, []
            try:
                header = next(rows, [])
                start = rows.line_num + 1
                for row in rows:
                    if row and len(row) != len(header):
                        return RowProblem(start, len(row), len(header), rows.line_num)
                    start = rows.line_num + 1
            except csv.Error:  # a value past the limit
                return RowProblem(start, None, len(header), rows.line_num)
    finally:
        csv.field_size_limit(limit)
    return None


def late_problem(path: Path, table, delimiter: str = ",", decimal: str = ".",
                 columns: list[str] | None = None) -> str | None:
    """In a table read from `path`, a column the whole file typed otherwise than its first
    block would be: text where the first rows are numbers, or bytes where a value is not
    UTF-8. The first value at fault, by line; `columns`: those that count (default: all)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    # By position: a name may be there twice (the caller says so after reading).
    used = [i for i, name in enumerate(table.column_names) if columns is None or name in columns]
    for i in used:  # bytes: pyarrow's word for a value that is not UTF-8
        kind = table.column(i).type
        if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
            for row, value in enumerate(table.column(i).to_pylist()):
                try:
                    if value is not None:
                        value.decode("utf-8")
                except UnicodeDecodeError as exc:
                    return (f"column {table.column_names[i]!r} has bytes that are not UTF-8 "
                            f"text at line {row + 2} (byte {value[exc.start]:#x}); save the "
                            "file as UTF-8 (e.g. iconv -f latin1 -t utf-8)")
    texts = [i for i in used if _is_text(table.column(i))]
    if not texts or table.num_rows == 0:
        return None
    with pacsv.open_csv(path, parse_options=pacsv.ParseOptions(delimiter=delimiter),
                        convert_options=pacsv.ConvertOptions(decimal_point=decimal)) as reader:
        first = reader.schema
    for i in texts:
        kind = first.field(i).type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
            continue
        for row, value in enumerate(table.column(i).to_pylist()):
            if value is not None and not _number(value, decimal):
                return (f"column {table.column_names[i]!r} holds numbers in its first rows, "
                        f"but line {row + 2} has {value[:40]!r}; fix or drop that row (a "
                        "column is numbers or text throughout)")
    return None


def _number(value: str, decimal: str) -> bool:
    try:
        float(value.replace(decimal, ".") if decimal != "." else value)
    except ValueError:
        return False
    return True


class TableProblem(ValueError):
    def __init__(self, loc: tuple[Any, ...], message: str):
        super().__init__(message)
        self.loc = loc


def _is_text(column) -> bool:
    import pyarrow as pa

    kind = column.type
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _usable(column) -> bool:
    import pyarrow as pa

    kind = column.type
    return (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
            or pa.types.is_null(kind) or _is_text(column))


def _check_present(table, columns: list[str], name: str, loc) -> None:
    """Every used column holds numbers, true/false or text, and no value is missing; all
    the columns at fault are named at once."""
    odd = [f"{c!r} ({table.column(c).type})" for c in columns if not _usable(table.column(c))]
    if odd:
        raise TableProblem(loc, f"column{'s' if len(odd) > 1 else ''} {', '.join(odd)} of "
                                f"{name} hold{'' if len(odd) > 1 else 's'} neither numbers, "
                                "true/false nor text; leave "
                                f"{'them' if len(odd) > 1 else 'it'} out of features, or "
                                "turn the values into numbers first (a date into a day "
                                "number, for example)")
    gaps = []
    for column in columns:
        nulls = table.column(column).null_count
        if nulls:
            mask = table.column(column).is_null().to_numpy(zero_copy_only=False)
            rows = ", ".join(str(r + 2) for r in np.flatnonzero(mask)[:5])  # +2: header, 1-based
            gaps.append(f"column {column!r} of {name} has {nulls} missing value"
                        f"{'s' if nulls > 1 else ''} (line {rows}{', ...' if nulls > 5 else ''}"
                        " of the file)")
    if gaps:
        raise TableProblem(loc, f"{'; '.join(gaps)}; fill or drop them before training")


def feature_columns(groups) -> list[str]:
    return [c for g in (groups.values() if isinstance(groups, dict) else [groups]) for c in g]


def _text_type(arrow_type) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    return pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)


@dataclass(frozen=True)
class Plan:
    """Which columns a table source uses and how: what `learn` counts and `encode_table`
    maps, from the column types alone (a schema is enough)."""

    groups: Any  # [columns] or {input name: [columns]}
    labels: list[str]
    text: list[str]  # kept as raw strings
    categories: list[str]  # string features mapped to ids through a vocabulary
    classes: list[str]  # string labels mapped to class indices
    numbers: list[str]  # features and labels used as numbers

    @property
    def used(self) -> list[str]:
        return self.labels + feature_columns(self.groups)


def plan(schema, cfg) -> Plan:
    """The Plan of a table whose columns are typed as `schema` says (a pyarrow Schema),
    or TableProblem for a `text:` column that holds no text."""
    groups = cfg.feature_groups(list(schema.names))
    features = feature_columns(groups)
    for column in cfg.text:
        if not _text_type(schema.field(column).type):
            raise TableProblem(("data", "text"), f"column {column!r} holds "
                                                 f"{schema.field(column).type} values, not text")
    labels = cfg.label_columns()
    strings = [c for c in features if _text_type(schema.field(c).type)]
    return Plan(groups, labels, list(cfg.text), [c for c in strings if c not in cfg.text],
                [c for c in labels if _text_type(schema.field(c).type)],
                [c for c in labels + features if not _text_type(schema.field(c).type)])


def learner(p: Plan):
    from cbrun.data.learn import Learner

    return Learner(p.numbers, [*p.categories, *p.text, *p.classes], p.text)


def learned_artifacts(p: Plan, learned, cfg, loc=("data", "path")) -> tuple[dict, dict]:
    """(table.json, stats.json) of what a pass over the training rows learned: the
    vocabularies (the `max_categories` most frequent values of each category, sorted),
    the classes (every training value of a text label, sorted), and what the model's
    inputs hold: each number column's and each category's id count, mean and variance,
    each text column's values by frequency."""
    from cbrun.data.learn import DISTINCT_MOST, top_values

    for column in [*p.categories, *p.classes]:
        if learned.strings[column] is None:
            raise TableProblem(loc, f"column {column!r} has more than {DISTINCT_MOST:,} "
                                    "distinct values in its training rows: an identifier or "
                                    "free text, not a category; leave it out of features, "
                                    "or list it under text: to keep the strings for the "
                                    "model's own layers")
    most = getattr(cfg, "max_categories", None)
    vocab = {c: top_values(learned.strings[c], most) for c in p.categories}
    classes = {c: sorted(learned.strings[c]) for c in p.classes}
    artifacts = {"features": p.groups, "labels": p.labels, "vocabularies": vocab,
                 "classes": classes, "text": list(p.text)}
    stats = learned.to_json()
    stats["numbers"] = {**stats["numbers"],
                        **{c: learned.id_moments(c, vocab[c]) for c in p.categories}}
    stats["strings"] = {c: v for c, v in stats["strings"].items() if c not in p.categories}
    stats["distinct"] = {c: len(learned.strings[c]) for c in p.categories}
    stats["features"] = p.groups
    return artifacts, stats


def learn_with_stats(table, cfg) -> tuple[dict[str, Any], dict[str, Any]]:
    """(table.json, stats.json) of the training rows in `table`, in one pass."""
    p = plan(table.schema, cfg)
    pass_ = learner(p)
    pass_.add(table.select(list(dict.fromkeys(p.numbers + [*p.categories, *p.text,
                                                            *p.classes]))))
    return learned_artifacts(p, pass_.result(), cfg)


def learn(table, cfg) -> dict[str, Any]:
    """Vocabularies of the string feature columns and classes of string labels, from the
    training rows."""
    return learn_with_stats(table, cfg)[0]


def _ids(values, mapping: list[str]) -> np.ndarray:
    """Each value's index in `mapping`, -1 where it is not there (pyarrow's hash table)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = values.type.value_type if pa.types.is_dictionary(values.type) else values.type
    if pa.types.is_dictionary(values.type):
        values = values.cast(kind)
    found = pc.index_in(values, value_set=pa.array(mapping, type=pa.string()).cast(kind))
    return np.asarray(found.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)


def _column(table, name: str, mapping: list[str] | None) -> np.ndarray:
    values = table.column(name)
    if mapping is None:
        return values.to_numpy(zero_copy_only=False)
    return _ids(values, mapping)


def encode_table(table, artifacts: dict[str, Any], name: str, labels: bool = True,
                 loc=("data",), text_objects: bool = False) -> tuple[Arrays, Arrays | None]:
    """(x, y) of a table with what `learn` found; y is None when `labels` is False.
    `text_objects`: text as an array of Python strings (what a stream hands TensorFlow)
    rather than of fixed-width numpy strings, as wide as the longest value."""
    groups = artifacts["features"]

    text = set(artifacts.get("text", []))  # runs before text columns have none

    def features(columns: list[str]) -> np.ndarray:
        if text.intersection(columns):  # a text input: raw strings, checked to be all text
            if text_objects:
                return np.stack([table.column(c).to_numpy(zero_copy_only=False)
                                 for c in columns], axis=1)
            return np.stack([np.asarray(table.column(c).to_pylist(), dtype=str)
                             for c in columns], axis=1)
        parts = []
        for column in columns:
            vocab = artifacts["vocabularies"].get(column)
            values = _column(table, column, vocab)
            parts.append(values + 1 if vocab is not None else values)
        return np.stack(parts, axis=1).astype(np.float32)

    x = ({key: features(cols) for key, cols in groups.items()} if isinstance(groups, dict)
         else features(groups))
    if not labels:
        return x, None
    ys = {}
    for column in artifacts["labels"]:
        classes = artifacts["classes"].get(column)
        values = _column(table, column, classes)
        if classes is not None:
            if (values < 0).any():
                shown = table.column(column).filter(pa_mask(values < 0))
                unseen = sorted(set(shown.to_pylist()) - {None})
                raise TableProblem(loc, f"{name} has label value{'s' if len(unseen) > 1 else ''}"
                                        f" {', '.join(map(repr, unseen[:5]))} in column "
                                        f"{column!r} that the training rows never show "
                                        f"(classes: {', '.join(map(repr, classes[:10]))})")
            values = values.astype(np.int32)
        elif values.dtype.kind == "f":
            values = values.astype(np.float32)
        elif values.dtype.kind in "iub":
            values = values.astype(np.int32)
        ys[column] = values
    y = ys if len(ys) > 1 else next(iter(ys.values()))
    return x, y


def pa_mask(mask: np.ndarray):
    import pyarrow as pa

    return pa.array(mask, type=pa.bool_())


def label_values(table, cfg):
    """The one label column's values (for a stratified split), or None for several."""
    labels = cfg.label_columns()
    if len(labels) != 1:
        return None
    return table.column(labels[0]).to_numpy(zero_copy_only=False)


def read_all(shards, columns: list[str] | None = None):
    """Every row of a table's files as one pyarrow Table, in the files' order; a CSV file
    through read_csv (its problems by line). ValueError or OSError naming the file."""
    import pyarrow as pa

    if shards.source == "csv" and not shards.hive:
        options = shards.csv_options
        tables = []
        for path in shards.files:
            try:
                table = read_csv(path, options.get("delimiter", ","),
                                 options.get("decimal", "."), columns=columns)
            except ValueError as exc:
                raise ValueError(f"{shards.name(path)}: {exc}" if len(shards.files) > 1
                                 else str(exc)) from None
            tables.append(table)
        if len(tables) == 1:
            return tables[0]
        schema = pa.schema([shards.schema.field(n) for n in tables[0].column_names])
        return pa.concat_tables([t.select(schema.names).cast(schema) for t in tables])
    dataset = shards.dataset()
    names = columns if columns is not None else shards.columns
    tables = []
    for path, fragment in zip(shards.files, dataset.get_fragments(), strict=True):
        try:
            tables.append(fragment.to_table(schema=dataset.schema, columns=names))
        except (pa.ArrowInvalid, OSError) as exc:
            raise ValueError(f"{shards.name(path)}: {' '.join(str(exc).split())[:200]}") from None
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def encode_splits(cfg, folder: Path, seed: int
                  ) -> tuple[dict[str, tuple[Arrays, Arrays] | None], dict, dict, dict]:
    """{'train': (x, y), 'validation': ... or None, 'test': ... or None}, the artifacts,
    how the rows were split (`Cut.summary()`), and what the training rows hold
    (stats.json)."""
    from cbrun.data.splits import draw

    groups_of = {}

    def read(field: str):
        value = getattr(cfg, field)
        try:
            shards = cfg.open_table(folder, value)
            table = read_all(shards, cfg.read_columns(shards))
        except (ValueError, OSError) as exc:  # a row or a block past the first one
            text = " ".join(str(exc).split()) or type(exc).__name__
            shown = Path(value).name
            raise TableProblem(("data", field), f"{shown} is not a readable {cfg.source} "
                                                f"table: {text}") from None
        name = shards.files[0].name if len(shards.files) == 1 else shards.shown
        groups = cfg.feature_groups(table.column_names)
        used = cfg.label_columns() + feature_columns(groups)
        _check_present(table, used, name, ("data", field))
        groups_of[field] = name
        return table

    table = read("path")
    cut = draw(table.num_rows, cfg.validation_split, cfg.test_split, cfg.split, seed,
               labels=label_values(table, cfg))
    parts = {"train": table.take(cut.train),
             "validation": table.take(cut.validation) if cfg.validation_split else None,
             "test": table.take(cut.test) if cfg.test_split else None}
    if cfg.validation_path:
        parts["validation"] = read("validation_path")
    if cfg.test_path:
        parts["test"] = read("test_path")
    if parts["train"].num_rows == 0:
        raise TableProblem(("data", "path"), f"{groups_of['path']} leaves no training rows")
    artifacts, stats = learn_with_stats(parts["train"], cfg)
    out = {}
    for split, part in parts.items():
        field = {"train": "path"}.get(split, f"{split}_path")
        name = groups_of.get(field, groups_of["path"])
        where = f"{name} (its {split} rows)" if split != "train" else name
        out[split] = (None if part is None else
                      encode_table(part, artifacts, where, loc=("data", field)
                                   if getattr(cfg, field, None) else ("data", "path")))
    return out, artifacts, cut.summary(), stats
