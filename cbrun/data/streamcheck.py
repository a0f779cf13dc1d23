"""The checks before TensorFlow of a table that will stream: what can be known without
reading it whole. Its files' schemas are checked already (cbrun/data/shards.py); here, from
a Parquet file's footers, the missing values its statistics count (each named by file and
row, reading only that row group's column), and from its label columns alone, the held-out
rows drawn as the run draws them and a validation or test class that training lacks.

A CSV has neither footers nor a label column that can be read alone: its missing values
and classes are checked by the run's first pass over it (cbrun/data/stream.first_pass),
still before the first epoch."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cbrun.config.data.common import Found
from cbrun.data.shards import Shards
from cbrun.data.tables import TableProblem

EXAMPLES = 5


def missing_values(shards: Shards, columns: list[str], loc: tuple) -> Found:
    """Columns with missing values by the row groups' statistics: the file and rows of the
    first ones."""
    import pyarrow.parquet as pq

    found: Found = []
    for path in shards.files:
        meta = pq.read_metadata(path)
        names = [meta.schema.column(i).path for i in range(meta.num_columns)]
        start = 0
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            for i, name in enumerate(names):
                stats = group.column(i).statistics
                if name in columns and stats is not None and stats.has_null_count and \
                        stats.null_count:
                    column = pq.ParquetFile(path).read_row_group(g, columns=[name]).column(0)
                    rows = np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))
                    shown = ", ".join(str(start + int(r) + 1) for r in rows[:EXAMPLES])
                    more = ", ..." if len(rows) > EXAMPLES else ""
                    found.append((loc, (f"column {name!r} of {shards.name(path)} has missing "
                                        f"values (row {shown}{more} of the file); fill or "
                                        "drop them before training")))
                    columns = [c for c in columns if c != name]  # once per column
            start += group.num_rows
    return found


def stream_problems(cfg, folder: Path, seed: int) -> Found:
    from cbrun.data.stream import count_splits, unseen_classes
    from cbrun.data.tables import plan

    shards = {field: cfg.open_table(folder, value) for field, value in cfg.paths().items()}
    main = shards["path"]
    used = cfg.used_columns(main.columns)
    found: Found = []
    for field, table in shards.items():
        if table.source == "parquet":
            found += missing_values(table, used, ("data", field))
    if found or main.source != "parquet":
        return found
    try:
        p = plan(main.schema, cfg)
        counted = count_splits(cfg, shards, seed, p.labels)
        unseen_classes(counted.tally, {name: counted.tally.classes("train", name) or []
                                       for name in p.classes}, counted.where)
    except TableProblem as exc:
        found.append((exc.loc, str(exc)))
    return found
