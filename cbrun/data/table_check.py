"""`cbrun data check` on a table (CSV, Parquet): the files read by the config's own reader,
the held-out rows drawn as cbrun.data.tables.encode_splits draws them (the same labels, sizes
and seed), then the report of cbrun/data/report.py over one table of every file's rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cbrun.config.data.table import first_line
from cbrun.data.duplicates import duplicates_report
from cbrun.data.report import Part, Places, drawn_split, label_report, scan
from cbrun.data.shards import ShardProblem
from cbrun.errors import UsageError


def _reader(source: str, spec, data):
    """The config's own reader (its delimiter, decimal mark), or one with the preview's."""
    if data is not None:
        return data
    from cbrun.config.data import SOURCES

    # A reader only: no label, no fields checked (read() uses delimiter and decimal).
    return SOURCES[source].model_construct(source=source, delimiter=spec.delimiter,
                                           decimal=".")


def _read(reader, source: str, path: Path, shown: str):
    if source == "csv":
        with path.open("rb") as handle:
            if b"\0" in handle.read(65536):
                raise UsageError(f"{shown} is not a readable csv table: it holds binary "
                                 "bytes, and a CSV table is text with a header row")
    try:
        # A CSV is read as pyarrow types it, no column held to its first rows' type: a
        # word in a column of numbers is the report's finding, not a refusal.
        table = reader.read(path, []) if source == "csv" else reader.read(path)
    except ShardProblem as exc:  # it names the file and says what is wrong
        raise UsageError(first_line(exc)) from None
    except (ValueError, OSError) as exc:
        # pyarrow quotes the line it choked on: printable characters only, and not all
        reason = "".join(c if c.isprintable() else "?" for c in first_line(exc))
        raise UsageError(f"{shown} is not a readable {source} table: "
                         f"{reason[:200]}{'...' if len(reason) > 200 else ''}") from None
    if table.num_rows == 0:
        raise UsageError(f"{shown} has no rows (its columns: "
                         f"{', '.join(table.column_names) or 'none'})")
    names = table.column_names
    twice = next((name for name in names if names.count(name) > 1), None)
    if twice is not None:
        places = ", ".join(str(i + 1) for i, name in enumerate(names) if name == twice)
        raise UsageError(f"{shown} has {names.count(twice)} columns named {twice!r} (columns "
                         f"{places}); give each column a name of its own")
    return table


def _read_size(source: str, files: dict[str, tuple[Path, str]]) -> str | None:
    """What the report read of a table of several files (a folder of shards, a glob):
    every row of every file; None for single files."""
    from cbrun.data.shards import ShardProblem, list_files
    from cbrun.data.stream import human

    listed = []
    for path, _ in files.values():
        try:
            listed += list_files(str(path), Path.cwd(), source)[1]
        except ShardProblem:
            return None
    if len(listed) == len(files):
        return None
    size = sum(p.stat().st_size for p in listed)
    return f"every row of {len(listed)} files ({human(size)})"


def _concat(tables: list):
    """One table of every file's rows: a column's values get one key in all of them
    (rowkeys). A column typed differently in two files (numbers here, text there) is
    compared as text."""
    import pyarrow as pa

    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        types = {}
        for table in tables:
            for item in table.schema:
                types.setdefault(item.name, set()).add(item.type)
        odd = {name for name, kinds in types.items() if len(kinds) > 1}
        return pa.concat_tables(
            [t.select(t.column_names).cast(pa.schema(
                [pa.field(f.name, pa.large_string() if f.name in odd else f.type)
                 for f in t.schema])) for t in tables], promote_options="permissive")


def table_check(source: str, files: dict[str, tuple[Path, str]], spec, seed: int,
                data) -> dict:
    from cbrun.data.balance import split_warnings
    from cbrun.data.sampled import sampled_check
    from cbrun.data.splits import draw
    from cbrun.data.tables import label_values

    sampled = sampled_check(source, files, spec, seed, data)
    if sampled is not None:  # shards with more rows than the sample: footers, labels, sample
        return sampled
    reader = _reader(source, spec, data)
    tables = {name: _read(reader, source, path, shown) for name, (path, shown) in files.items()}
    train = tables["path"]
    columns = train.column_names
    if spec.label is not None and data is None and spec.label not in columns:
        from cbrun.suggest import did_you_mean

        raise UsageError(f"{files['path'][1]} has no column {spec.label!r}"
                         f"{did_you_mean(spec.label, columns)}; its columns: "
                         f"{', '.join(columns)}")
    labels = spec.label_columns()
    findings = []
    if source == "csv" and len(columns) == 1 and (mark := next(
            (c for c in ";\t|" if c in columns[0]), None)):
        findings.append({"kind": "delimiter", "column": columns[0], "message": (
            f"{files['path'][1]} reads as one column, {columns[0]!r}: if its fields are "
            f"separated by {mark!r}, say so (data.delimiter in a config, --delimiter here)")})
    groups = data.feature_groups(columns) if data is not None else \
        [c for c in columns if c not in labels]
    features = [c for g in (groups.values() if isinstance(groups, dict) else [groups])
                for c in g]
    # The draw of cbrun.data.tables.encode_splits: the same labels, sizes and seed.
    drawn_on = label_values(train, spec) if labels else None
    cut = draw(train.num_rows, spec.validation_split, spec.test_split, spec.split, seed,
               labels=drawn_on)
    header = source == "csv"
    parts = [Part("train", files["path"][1], cut.train, cut.train + 1, header)]
    for split in ("validation", "test"):
        if getattr(spec, f"{split}_split"):
            rows = getattr(cut, split)
            parts.append(Part(split, files["path"][1], rows, rows + 1, header))
    offset = train.num_rows
    for split in ("validation", "test"):
        if f"{split}_path" in files:
            count = tables[f"{split}_path"].num_rows
            rows = np.arange(offset, offset + count)
            parts.append(Part(split, files[f"{split}_path"][1], rows, rows - offset + 1,
                              header))
            offset += count
    table = _concat(list(tables.values())) if len(tables) > 1 else train
    places = Places(parts, table.num_rows)
    scanned = scan(table, features, labels, list(spec.text), places)
    findings += scanned.findings
    label_sections = []
    values = {}
    for name in labels:
        column = table.column(name)
        present = ~column.is_null().to_numpy(zero_copy_only=False)
        values[name] = drawn_on if table is train and drawn_on is not None else \
            column.to_numpy(zero_copy_only=False)
        section, found = label_report(name, values[name], parts, present)
        label_sections.append(section)
        findings += found
    drawn = bool(spec.validation_split or spec.test_split)
    if len(labels) == 1 and len(parts) > 1:
        summary = cut.summary() if drawn else None
        lines = split_warnings({part.split: values[labels[0]][part.rows] for part in parts},
                               spec, summary)
        findings += [{"kind": "split", "message": line} for line in lines]
    duplicates, found = duplicates_report(table, features, labels, places,
                                          hashes=(scanned.by_features, scanned.whole))
    findings += found
    return {"kind": "table", "rows": {part.split: len(part.rows) for part in parts},
            "read": _read_size(source, files),
            "split": drawn_split(cut.summary(), spec) if drawn else None,
            "columns": scanned.profiles, "labels": label_sections, "duplicates": duplicates,
            "findings": findings}
