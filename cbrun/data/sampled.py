"""`cbrun data check` on a table of several files (a folder of shards, a glob) too big to
read every row of: what it needs, and no more. Memory does not grow with the table.

- the footers of a Parquet table: its rows, and each column's missing values (named by
  file and row, as `validate` names them) and range, for every row;
- its label columns alone, counted by split (cbrun/data/stream.count_splits): the rows
  and classes of each split, exactly, each row's split drawn as a streamed run draws it
  (from the seed and its position);
- a seeded sample of SAMPLE_ROWS rows, whole row groups (a CSV's whole files) drawn at
  random: the columns' kinds and distinct values, constant columns, repeated rows and rows
  held out that training holds too, among the sample's rows.

The report says so in one line (`read: ...`). A table of one file, of no more rows than
the sample, or that a config's run reads whole (`stream: false`, or `auto` on a table that
fits), is read whole as before (cbrun/data/table_check.py), its held-out rows drawn as that
run draws them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

SAMPLE_ROWS = 200_000
_SAMPLE_STREAM = 0x5A3B1E  # the sample's own stream of the seed


def footer_stats(shards) -> dict[str, dict[str, Any]]:
    """{column: {missing, min, max}} over every row group's statistics (min and max None
    where a group has none)."""
    import pyarrow.parquet as pq

    found: dict[str, dict[str, Any]] = {}
    for path in shards.files:
        meta = pq.read_metadata(path)
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            for i in range(meta.num_columns):
                column = group.column(i)
                mine = found.setdefault(column.path_in_schema,
                                        {"missing": 0, "min": None, "max": None, "ranged": True})
                stats = column.statistics
                if stats is None or not stats.has_null_count:
                    mine["missing"] = None
                elif mine["missing"] is not None:
                    mine["missing"] += stats.null_count
                if stats is None or not stats.has_min_max:
                    if group.num_rows > (stats.null_count if stats is not None and
                                         stats.has_null_count else 0):
                        mine["ranged"] = False
                    continue
                try:
                    mine["min"] = stats.min if mine["min"] is None else min(mine["min"], stats.min)
                    mine["max"] = stats.max if mine["max"] is None else max(mine["max"], stats.max)
                except TypeError:
                    mine["ranged"] = False
    return found


def sample_steps(pieces: list, rows: int, seed: int) -> list[tuple[Any, int]]:
    """(piece, rows taken from its start) of whole pieces drawn at random from the seed
    until `rows` rows, in file order."""
    order = np.random.default_rng([seed, _SAMPLE_STREAM]).permutation(len(pieces))
    chosen, left = [], rows
    for index in order:
        if left <= 0:
            break
        take = min(pieces[index].rows, left)
        chosen.append((int(index), take))
        left -= take
    return [(pieces[i], take) for i, take in sorted(chosen)]


def read_sample(shards, steps, columns: list[str]):
    """(the sampled rows as one pyarrow Table, each row's position in the table)."""
    import pyarrow as pa

    from cbrun.data.stream import Reader

    reader = Reader(shards)
    tables, positions = [], []
    for piece, take in steps:
        got = 0
        for batch in reader.batches(piece, columns):
            part = batch.slice(0, take - got)
            tables.append(pa.Table.from_batches([part]))
            got += part.num_rows
            if got >= take:
                break
        positions.append(piece.start + np.arange(got, dtype=np.int64))
    return pa.concat_tables(tables), np.concatenate(positions)


def _shards(source: str, path: Path, spec):
    from cbrun.data.shards import ShardProblem, open_shards

    options = {"delimiter": getattr(spec, "delimiter", ","),
               "decimal": getattr(spec, "decimal", ".")} if source == "csv" else {}
    try:
        return open_shards(str(path), Path("."), source, **options)
    except ShardProblem:
        return None  # read whole: that reader names what is wrong


def sampled_check(source: str, files: dict[str, tuple[Path, str]], spec, seed: int,
                  data) -> dict | None:
    """The report on a table of several files with more rows than the sample, or None
    (then every row is read)."""
    from cbrun.data.balance import split_warnings
    from cbrun.data.duplicates import duplicates_report
    from cbrun.data.report import Part, Places, _unseen, drawn_split, scan
    from cbrun.data.rowsplit import CODES
    from cbrun.data.stream import count_splits, human, split_summary
    from cbrun.data.tally import SPLITS, Counted

    if set(files) != {"path"}:
        return None
    path, shown = files["path"]
    shards = _shards(source, path, spec)
    if shards is None or len(shards.files) < 2:
        return None
    if data is not None:
        from cbrun.data.stream import decide

        if not decide(data, shards).stream:
            return None  # its run reads it whole and draws its held-out rows exactly: so here
    columns = shards.columns
    labels = [c for c in spec.label_columns() if c in columns]
    if len(labels) != len(spec.label_columns()):
        return None  # the whole read names the missing label
    counted = count_splits(spec, {"path": shards}, seed, labels)
    if counted.rows <= SAMPLE_ROWS:
        return None
    tally = counted.tally
    sample, positions = read_sample(shards, sample_steps(counted.pieces, SAMPLE_ROWS, seed),
                                    columns)
    codes = np.zeros(len(positions), dtype=np.int8) if counted.split is None else \
        _codes_at(counted.split, positions)
    header = source == "csv"
    parts = [Part(split, shown, np.flatnonzero(codes == CODES[split]),
                  positions[codes == CODES[split]] + 1, header)
             for split in SPLITS if split == "train" or getattr(spec, f"{split}_split")]
    places = Places(parts, sample.num_rows)
    groups = data.feature_groups(columns) if data is not None else \
        [c for c in columns if c not in labels]
    features = [c for g in (groups.values() if isinstance(groups, dict) else [groups])
                for c in g]
    scanned = scan(sample, features, labels, list(spec.text), places)
    findings = scanned.findings
    profiles = scanned.profiles
    footers = ""
    if source == "parquet":
        findings, profiles = _footers(shards, features + labels, findings, profiles)
        footers = f"{len(shards.files)} footers, "
    sections = []
    for name in labels:
        section = _label_section(name, tally, [part.split for part in parts])
        sections.append(section)
        if section["kind"] == "classes":
            findings += _unseen(name, section["classes"], section["counts"])
    drawn = bool(spec.validation_split or spec.test_split)
    summary = split_summary(tally, counted.split, spec.split, counted.by_split.sum(axis=0))
    if len(labels) == 1 and len(parts) > 1 and tally.is_classes(labels[0]):
        names = sorted(set().union(*(tally.columns[s][labels[0]].counts for s in SPLITS)))
        index = {v: i for i, v in enumerate(names)}
        by_split = {}
        for part in parts:
            counts = tally.columns[part.split][labels[0]].counts
            by_split[part.split] = Counted(np.array([index[v] for v in sorted(counts)]),
                                           np.array([counts[v] for v in sorted(counts)]))
        findings += [{"kind": "split", "message": line} for line in split_warnings(
            by_split, spec, summary if drawn else None, [str(n) for n in names])]
    duplicates, found = duplicates_report(sample, features, labels, places,
                                          hashes=(scanned.by_features, scanned.whole))
    findings += found
    size = sum(p.stat().st_size for p in shards.files)
    label_part = f"the label column{'s' if len(labels) > 1 else ''} and " if labels else ""
    read = (f"{footers}{label_part}a sample of {sample.num_rows:,} of {counted.rows:,} rows "
            f"({sample.num_rows / counted.rows:.1%}; whole {'row groups' if source == 'parquet' else 'files'} "
            f"drawn from the seed) of {len(shards.files)} files ({human(size)}): distinct "
            "values, constant columns and repeated rows are the sample's"
            + ("; missing values and ranges the footers' (every row)" if footers else ""))
    rows = counted.by_split.sum(axis=0)
    return {"kind": "table", "rows": {part.split: int(rows[CODES[part.split]]) for part in parts},
            "read": read, "split": drawn_split(summary, spec) if drawn else None,
            "columns": profiles, "labels": sections, "duplicates": duplicates,
            "findings": findings}


def _codes_at(split, positions: np.ndarray) -> np.ndarray:
    """Each sampled row's split: its runs of neighbouring positions drawn at once."""
    breaks = np.flatnonzero(np.diff(positions) != 1) + 1
    return np.concatenate([split.codes(int(run[0]), len(run))
                           for run in np.split(positions, breaks)])


def _footers(shards, used: list[str], findings: list[dict], profiles: list[dict]):
    """A Parquet table's missing values and ranges from its footers, for every row: the
    sample's findings of missing values give way to the footers' (by file and row)."""
    from cbrun.data.columns import plain
    from cbrun.data.streamcheck import missing_values

    stats = footer_stats(shards)
    findings = [f for f in findings if f["kind"] != "missing"]
    for _, message in missing_values(shards, used, ("data", "path")):
        column = next((c for c in used if message.startswith(f"column {c!r} of ")), None)
        findings.append({"kind": "missing", "column": column, "message": message})
    for info in profiles:
        mine = stats.get(info["name"])
        if mine is None:
            continue
        if mine["missing"] is not None:
            info["missing"] = mine["missing"]
        if mine["ranged"] and mine["min"] is not None and info["min"] is not None:
            info["min"], info["max"] = plain(mine["min"]), plain(mine["max"])
        if mine["ranged"] and mine["min"] is not None and info["use"] == "feature":
            constant = mine["min"] == mine["max"] and not mine["missing"]
            if info["constant"] and not constant:
                info["constant"] = False
                findings = [f for f in findings if not (f["kind"] == "constant" and
                                                        f.get("column") == info["name"])]
    return findings, profiles


def _label_section(name: str, tally, splits: list[str]) -> dict:
    """The label's report section from its counts: classes and their rows per split, or a
    number's rows, min, mean and max per split."""
    from cbrun.data.columns import plain

    columns = {s: tally.columns[s][name] for s in splits}
    if tally.is_classes(name):
        classes = sorted(set().union(*(c.counts for c in columns.values())))
        counts = {s: [c.counts.get(v, 0) for v in classes] for s, c in columns.items()}
        return {"name": name, "kind": "classes", "classes": [plain(c) for c in classes],
                "counts": counts}
    stats = {s: {"rows": c.rows, "min": plain(c.low), "mean": c.total / c.rows if c.rows
                 else None, "max": plain(c.high)} for s, c in columns.items()}
    return {"name": name, "kind": "number", "stats": stats}
