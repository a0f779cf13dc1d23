"""Tables bigger than memory, without TensorFlow: whether a table is streamed, and a
streamed table's splits, learned from and read a window at a time.

`stream: auto` (the default) reads a table whole when its estimated size in memory is
under a quarter of the memory available, and streams it otherwise; `true` and `false`
force either. A run records what it chose (data/stream.json) and its resume reads the
table the same way, whatever the memory then.

A streamed table is read four times over, never held, and nothing is kept per row:
1. the footers and headers (cbrun/data/shards.py): its files, row groups and columns;
2. its label columns alone (for Parquet, only their bytes), counted by split
   (cbrun/data/tally.py): each row's split is drawn from (seed, its position)
   (cbrun/data/rowsplit.py) whenever the row is read, so no array of the rows is built;
3. one pass over every row (`first_pass`): missing values and rows that break a CSV are
   named, and what training learns from its rows (vocabularies, classes, each column's
   mean and variance: cbrun/data/learn.py) is gathered; saved in the run's data/ and read
   back by its resume instead of a second pass;
4. each epoch, the windows of its order (cbrun/data/order.py), one after the other,
   features and targets together.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cbrun.data.order import Window, window_rows, windows
from cbrun.data.rowsplit import CODES, Keep, RowSplit
from cbrun.data.shards import Piece, Shards, estimated_bytes, parquet_pieces
from cbrun.data.tables import (
    TableProblem,
    encode_table,
    feature_columns,
    learned_artifacts,
    learner,
    plan,
)
from cbrun.data.tally import Tally

STREAM_FILE = "stream.json"  # in the run's data/: whether it streamed, and its window
STATS_FILE = "stats.json"  # in the run's data/: what the training rows hold
SHARE = 4  # auto streams a table estimated to take more than 1/SHARE of the memory left
WINDOW_BYTES = 64 << 20  # the rows of a window, encoded, by default
READ_ROWS = 1 << 16  # rows per record batch read


def human(size: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def available_memory() -> int:
    """Bytes this process may still take: the kernel's MemAvailable (else the free
    pages), capped by a container's cgroup limit less what it already uses."""
    available = None
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
    except OSError:
        pass
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            available = 8 << 30  # no way to ask: a laptop's worth
    for limit, used in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                        ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                         "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        cap, now = _read_int(limit), _read_int(used)
        if cap is not None and cap < 1 << 60:
            available = min(available, max(0, cap - (now or 0)))
            break
    return available


@dataclass(frozen=True)
class Decision:
    """Whether a table streams, and why: what the run's first lines say."""

    stream: bool
    estimate: int  # bytes the table would take in memory, estimated
    limit: int  # what `auto` reads whole
    asked: str  # auto | true | false | the run's record
    window: int | None = None  # rows per window, when streamed

    def line(self, shards: Shards, rows: int | None) -> str:
        counted = f"{rows:,} rows, " if rows is not None else ""
        size = f"{counted}about {human(self.estimate)} in memory"
        if not self.stream:
            why = (f"stream: auto streams over {human(self.limit)}, a quarter of the memory "
                   "available" if self.asked == "auto" else f"stream: {self.asked}")
            return f"data: {shards.shown} read into memory ({size}; {why})"
        why = {"auto": f"over the {human(self.limit)} that stream: auto reads whole, a "
                       "quarter of the memory available",
               "true": "stream: true"}.get(self.asked, "as the run started")
        return (f"data: {shards.shown} streamed ({size}, {why}); each epoch reads its "
                f"pieces in an order drawn from the seed, then the rows of each window of "
                f"{self.window:,} in one")


def estimate(shards: Shards, used: list[str]) -> tuple[int, int | None]:
    """(bytes in memory, rows when known): what pyarrow reads, and the float32 arrays
    encoded from it, about as much again."""
    from cbrun.data.shards import estimated_bytes

    raw, rows = estimated_bytes(shards, used)
    return 2 * raw, rows


def decide(cfg, shards: Shards, recorded: dict | None = None) -> Decision:
    """Stream or not: the run's record when it has one (a resume reads as its run began),
    else `cfg.stream`, `auto` by the estimate against the memory available."""
    used = cfg.label_columns() + feature_columns(cfg.feature_groups(shards.columns))
    size, _ = estimate(shards, used)
    limit = available_memory() // SHARE
    if recorded is not None:
        return Decision(bool(recorded["stream"]), size, limit, "recorded",
                        recorded.get("window"))
    asked = cfg.stream if cfg.stream == "auto" else ("true" if cfg.stream else "false")
    stream = size > limit if cfg.stream == "auto" else bool(cfg.stream)
    return Decision(stream, size, limit, asked)


def data_key(cfg, seed: int) -> str:
    """What the saved stats depend on: a resume with other columns, labels or splits
    learns again."""
    fields = ("source", "path", "validation_path", "test_path", "label", "features", "text",
              "validation_split", "test_split", "split", "max_categories", "delimiter",
              "decimal")
    chosen = {name: getattr(cfg, name, None) for name in fields}
    return hashlib.sha256(json.dumps([chosen, seed], sort_keys=True,
                                     default=str).encode()).hexdigest()[:16]


# ---------------------------------------------------------------- reading pieces

def table_pieces(shards: Shards, row_counts: list[int] | None = None) -> list[Piece]:
    """A Parquet file's row groups, or each CSV file whole (its rows counted by the
    label read)."""
    if shards.source == "parquet":
        return parquet_pieces(shards)
    pieces, start = [], 0
    for index, rows in enumerate(row_counts or []):
        if rows:
            pieces.append(Piece(index, None, start, rows))
        start += rows
    return pieces


class Reader:
    """Record batches of a table's pieces, through pyarrow's dataset: a Parquet row
    group's pages, a CSV file's blocks. A file that breaks while read (a damaged page, a
    row a CSV's first block did not foresee) is a TableProblem naming it."""

    def __init__(self, shards: Shards, loc: tuple = ("data", "path")):
        self.shards, self.loc = shards, loc
        self.dataset = shards.dataset()
        self.fragments = list(self.dataset.get_fragments())

    def batches(self, piece: Piece, columns: list[str]) -> Iterator:
        import pyarrow as pa

        fragment = self.fragments[piece.file]
        if piece.group is not None:
            fragment = fragment.subset(row_group_ids=[piece.group])
        try:
            yield from fragment.to_batches(schema=self.dataset.schema, columns=columns,
                                           batch_size=READ_ROWS)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
            raise TableProblem(self.loc, self.problem(piece, exc)) from None

    def problem(self, piece: Piece, exc: Exception) -> str:
        import re

        path = self.shards.files[piece.file]
        text = " ".join(str(exc).split())
        found = re.search(r"In CSV column #(\d+): Row #(\d+): CSV conversion error to (\w+): "
                          r"invalid value '(.*?)'", text)
        if found:
            column = self.shards.schema.names[int(found.group(1))]
            return (f"column {column!r} of {self.shards.name(path)} holds numbers in its "
                    f"first rows, but line {found.group(2)} has {found.group(4)[:40]!r}; fix "
                    "or drop that row (a column is numbers or text throughout)")
        text = re.sub(r"^Could not open \w+ input source '[^']*': ", "", text)
        return f"{self.shards.name(path)} is not a readable {self.shards.source} table: " \
               f"{text[:200]}"


# ---------------------------------------------------------------- labels, counted

def file_rows(shards: Shards, column: str, loc=("data", "path")) -> list[int]:
    """Rows of each file: a Parquet footer's count, a CSV file's rows counted by reading
    one column (nothing kept)."""
    import pyarrow.parquet as pq

    if shards.source == "parquet":
        return [pq.read_metadata(p).num_rows for p in shards.files]
    reader = Reader(shards, loc)
    return [sum(b.num_rows for b in reader.batches(Piece(i, None, 0, 0), [column]))
            for i in range(len(shards.files))]


def count_labels(shards: Shards, labels: list[str], split: RowSplit | None, tally: Tally,
                 code: int = 0, loc=("data", "path")) -> list[int]:
    """One pass over the label columns alone (for Parquet, only their bytes), each row's
    split decided from its position (`split`; None: every row is split `code`), counted
    into `tally`: nothing is kept per row. The rows of each file."""
    reader = Reader(shards, loc)
    counts, at = [], 0
    read = labels or shards.columns[:1]  # no label (data check): a column to count rows by
    for index in range(len(shards.files)):
        rows = 0
        for batch in reader.batches(Piece(index, None, 0, 0), read):
            n = batch.num_rows
            tally.add(batch, None if split is None else split.codes(at, n), code,
                      order=split is not None or code == 0)
            rows += n
            at += n
        counts.append(rows)
    return counts


def unseen_classes(tally: Tally, classes: dict[str, list], where: dict[str, tuple[str, tuple]]
                   ) -> None:
    """TableProblem for a held-out split's text label value that the training rows never
    show (`where`: each held-out split's name and loc): found from the counts, before the
    first batch is encoded."""
    for split, (name, loc) in where.items():
        for column, known in classes.items():
            seen = tally.classes(split, column) or []
            unseen = sorted(set(seen) - set(known))
            if unseen:
                raise TableProblem(loc, f"{name} has label value{'s' if len(unseen) > 1 else ''}"
                                        f" {', '.join(map(repr, unseen[:5]))} in column "
                                        f"{column!r} that the training rows never show "
                                        f"(classes: {', '.join(map(repr, known[:10]))})")


# ---------------------------------------------------------------- one split's rows

@dataclass
class TableRows:
    """The rows of one split of a streamed table: which pieces hold them (each row's split
    drawn from its position, never stored), what its labels hold (counted), and how its
    columns and labels become model inputs and targets (table.json's artifacts)."""

    shards: Shards
    pieces: list[Piece]
    split: RowSplit | None  # each row's split from its position; None: all this one's
    code: int
    artifacts: dict
    window: int  # rows per window (a whole number of batches)
    name: str
    loc: tuple = ("data", "path")
    tally: dict | None = None  # Tally.split_json of the split's labels; None: not counted
    keep: Keep | None = None  # data.fraction's draw
    limit: int | None = None  # only the split's first rows (file order)
    counts: np.ndarray | None = None  # the split's rows in each piece, when known
    offsets: np.ndarray = field(init=False)

    def __post_init__(self):
        if self.counts is None:
            self.counts = np.array([p.rows if (m := self._mask(p)) is None else
                                    int(np.count_nonzero(m)) for p in self.pieces],
                                   dtype=np.int64)
        self.counts = np.asarray(self.counts, dtype=np.int64)
        if self.limit is not None:
            before = np.concatenate([[0], np.cumsum(self.counts)[:-1]])
            self.counts = np.clip(self.limit - before, 0, self.counts)
        self.offsets = np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(np.int64)
        self._reader = None

    def __len__(self) -> int:
        return int(self.counts.sum())

    def first(self, rows: int) -> TableRows:
        """The split's first `rows` rows (file order) as a split of their own
        (`overfit_batches`, `--fast-dev-run`)."""
        from dataclasses import replace

        return replace(self, limit=min(rows, len(self)), counts=self.counts, tally=None)

    def share(self, keep: Keep) -> TableRows:
        """A seeded share of the split's rows (`data.fraction`): still read from the files,
        the others skipped as the held-out rows are. Its label counts are the split's."""
        from dataclasses import replace

        return replace(self, keep=keep, counts=None)

    @property
    def groups(self):
        return self.artifacts["features"]

    @property
    def columns(self) -> list[str]:
        return feature_columns(self.groups)

    @property
    def labels(self) -> list[str]:
        return list(self.artifacts["labels"])

    def text_group(self, columns: list[str]) -> bool:
        return bool(set(self.artifacts.get("text", [])).intersection(columns))

    @property
    def reader(self) -> Reader:
        if self._reader is None:
            self._reader = Reader(self.shards, self.loc)
        return self._reader

    def _mask(self, piece: Piece) -> np.ndarray | None:
        if self.split is None and self.keep is None:
            return None
        mask = np.ones(piece.rows, dtype=bool)
        if self.split is not None:
            mask = self.split.codes(piece.start, piece.rows) == self.code
        if self.keep is not None:
            mask &= self.keep.mask(piece.start, piece.rows)
        return mask

    def _rows_of(self, piece: Piece, skip: int, take: int) -> Iterator:
        """The piece's rows of this split from the `skip`-th, `take` of them, as record
        batches of its feature and label columns (filtered before they are encoded)."""
        import pyarrow as pa

        mask = self._mask(piece)
        at = seen = 0
        for batch in self.reader.batches(piece, list(dict.fromkeys(self.columns +
                                                                   self.labels))):
            n = batch.num_rows
            if mask is not None:
                part = mask[at:at + n]
                if not part.all():
                    batch = batch.filter(pa.array(part))
            at += n
            lo, hi = max(skip - seen, 0), min(skip + take - seen, batch.num_rows)
            seen += batch.num_rows
            if hi > lo:
                yield batch.slice(lo, hi - lo)
            if seen >= skip + take:
                return

    def encode(self, batch) -> tuple[Any, Any]:
        return encode_table(batch, self.artifacts, self.name, loc=self.loc, text_objects=True)

    def _window_arrays(self, win: Window) -> tuple[Any, Any]:
        parts = [self.encode(batch) for step in win.steps
                 for batch in self._rows_of(self.pieces[step.piece], step.skip, step.take)]
        return _join([x for x, _ in parts]), _join([y for _, y in parts])

    def windows(self, seed: int, epoch: int, shuffle: bool, start_row: int = 0) -> Iterator:
        """(x, y, order) of each window of the epoch, from its `start_row`-th row: the
        window's rows as read, and the order to take them in (from the window's `drop`-th
        on)."""
        for win in windows(self.counts, self.window, seed, epoch, shuffle, start_row):
            x, y = self._window_arrays(win)
            order = win.order if win.order is not None else np.arange(win.rows)
            yield x, y, order[win.drop:].astype(np.int64)

    def rows_at(self, positions: np.ndarray) -> tuple[Any, Any]:
        """(inputs, targets) of the split's rows at `positions` (a few: a callback's
        samples, an export's): read from the pieces that hold them."""
        positions = np.asarray(positions, dtype=np.int64).reshape(-1)
        if not len(positions):
            x, y = self.encode(next(self._rows_of(self.pieces[0], 0, 1)))
            return _take(x, np.array([], int)), _take(y, np.array([], int))
        found: dict[int, Any] = {}
        ends = self.offsets + self.counts
        for index in np.unique(np.searchsorted(ends, positions, side="right")):
            first = int(self.offsets[index])
            mine = positions[(positions >= first) & (positions < ends[index])] - first
            parts = [self.encode(b) for b in self._rows_of(self.pieces[index], 0,
                                                            int(self.counts[index]))]
            x, y = _join([p[0] for p in parts]), _join([p[1] for p in parts])
            for at in np.unique(mine):
                found[int(first + at)] = (_take(x, np.array([at])), _take(y, np.array([at])))
        return (_join([found[int(p)][0] for p in positions]),
                _join([found[int(p)][1] for p in positions]))

    def all_targets(self) -> Any:
        """Every target of the split, in file order: one pass, and 4 bytes a row kept (for
        what needs them all: a confusion matrix, an export's score)."""
        parts = [y for _, y, _ in self.windows(0, 0, False)]
        return _join(parts) if parts else _take(self.rows_at(np.array([], int))[1],
                                                 np.array([], int))


def _join(parts: list) -> Any:
    if isinstance(parts[0], dict):
        return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    return np.concatenate(parts)


def _take(value: Any, rows: np.ndarray) -> Any:
    if isinstance(value, dict):
        return {key: v[rows] for key, v in value.items()}
    return value[rows]


class ColumnGroup:
    """A streamed split's inputs where arrays would be (`Split.x`): its length, the shape
    and dtype of one input, and rows read on demand; the batches come from `rows`."""

    def __init__(self, rows: TableRows, key: str | None):
        self.rows, self.key = rows, key
        columns = rows.groups[key] if key is not None else rows.groups
        self.width = len(columns)
        # Text as numpy's kind of strings ("U"): what the data checks read its kind by.
        self.dtype = np.dtype(str) if rows.text_group(columns) else np.dtype(np.float32)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.rows), self.width)

    def __getitem__(self, index) -> np.ndarray:
        positions = np.arange(len(self))[index] if isinstance(index, slice) else index
        x, _ = self.rows.rows_at(np.asarray(positions))
        return x[self.key] if self.key is not None else x


class Targets:
    """A streamed split's targets of one label where an array would be (`Split.y`): its
    length, dtype and what its labels hold, counted (`counted`, `mean`, `digest`), and
    rows read on demand; never the whole column unless asked for as an array."""

    ndim = 1

    def __init__(self, rows: TableRows, column: str):
        self.rows, self.column = rows, column
        import pyarrow as pa

        kind = rows.shards.schema.field(column).type
        classes = rows.artifacts["classes"].get(column)
        self.text = classes is not None  # a text label: its values are classes
        self.dtype = np.dtype(np.float32 if classes is None and pa.types.is_floating(kind)
                              else np.int32)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> tuple[int]:
        return (len(self.rows),)

    @property
    def _tally(self) -> dict | None:
        return None if self.rows.tally is None else self.rows.tally[self.column]

    def _pick(self, y: Any) -> np.ndarray:
        return y[self.column] if isinstance(y, dict) else y

    def __getitem__(self, index) -> np.ndarray:
        positions = np.arange(len(self))[index] if isinstance(index, slice) else index
        return self._pick(self.rows.rows_at(np.asarray(positions))[1])

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        values = self._pick(self.rows.all_targets())
        return values if dtype is None else values.astype(dtype)

    def counted(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(each value as the targets hold it, its rows) where the label holds few enough
        values to count (text, true/false, integers), else None; read from the counts, or
        from the rows where the split is a few first rows (`first`)."""
        tally = self._tally
        if tally is None:
            from cbrun.data.splits import uniques

            found = uniques(np.asarray(self))
            return found[0], found[2]
        if tally["floats"] or tally["counts"] is None:
            return None
        classes = self.rows.artifacts["classes"].get(self.column)
        items = sorted(tally["counts"].items())
        if classes is not None:
            index = {value: i for i, value in enumerate(classes)}
            items = sorted((index[v], c) for v, c in items)
        values = np.array([v for v, _ in items], dtype=self.dtype)
        return values, np.array([c for _, c in items], dtype=np.int64)

    def mean(self) -> float:
        tally = self._tally
        if tally is None:
            return float(np.asarray(self, dtype=np.float64).mean())
        found = self.counted()
        if found is not None:
            return float((found[0] * found[1]).sum() / max(1, found[1].sum()))
        return tally["sum"] / max(1, tally["rows"])

    def digest(self) -> np.ndarray:
        """A small array of the targets' dtype holding their smallest and largest value:
        what the data checks read of a label (its range, its kind)."""
        found = self.counted()
        if found is not None:
            return np.array([found[0].min(), found[0].max()] if len(found[0]) else [],
                            dtype=self.dtype)
        tally = self._tally
        if tally is None or tally["min"] is None:
            return np.asarray(self)
        return np.array([tally["min"], tally["max"]], dtype=self.dtype)


def inputs_of(rows: TableRows) -> Any:
    groups = rows.groups
    if isinstance(groups, dict):
        return {key: ColumnGroup(rows, key) for key in groups}
    return ColumnGroup(rows, None)


def targets_of(rows: TableRows) -> Any:
    labels = rows.labels
    if len(labels) == 1:
        return Targets(rows, labels[0])
    return {name: Targets(rows, name) for name in labels}


def rows_of(x: Any) -> TableRows | None:
    """The TableRows behind a split's inputs, or None for arrays and images."""
    first = next(iter(x.values()), None) if isinstance(x, dict) else x
    return first.rows if isinstance(first, ColumnGroup) else None


# ---------------------------------------------------------------- loading

@dataclass
class Streamed:
    """A streamed table's splits (TableRows or None), what was learned, how the rows
    were split, and the lines the run says about it."""

    splits: dict[str, TableRows | None]
    artifacts: dict
    stats: dict
    summary: dict
    record: dict  # stream.json
    notes: list[str]


def first_pass(readers: list[tuple[TableRows, bool]], p) -> Any:
    """One pass over every row of the table's files (`readers`: each split's rows, and
    whether the pass learns from it), in file order: missing values named, the training
    rows learned from."""
    import pyarrow as pa

    pass_ = learner(p)
    used = list(dict.fromkeys(p.used))
    learned_columns = list(dict.fromkeys(p.numbers + [*p.categories, *p.text, *p.classes]))
    for rows, learns in readers:
        reader = rows.reader
        for piece in rows.pieces:
            mask = rows._mask(piece)
            at = 0
            for batch in reader.batches(piece, used):
                _nulls(batch, used, rows, piece, at)
                n = batch.num_rows
                if learns:
                    part = batch if mask is None else batch.filter(pa.array(mask[at:at + n]))
                    pass_.add(part.select(learned_columns))
                at += n
    return pass_.result()


def _nulls(batch, used: list[str], rows: TableRows, piece: Piece, at: int) -> None:
    gaps = []
    for name in used:
        column = batch.column(name)
        if column.null_count:
            where = np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[:5]
            gaps.append((name, column.null_count, where))
    if not gaps:
        return
    shards = rows.shards
    path = shards.files[piece.file]
    first_row = piece.start - _file_start(rows, piece) + at  # 0-based row of the file
    unit, plus = ("line", 2) if shards.source == "csv" else ("row", 1)
    said = "; ".join(f"column {name!r} of {shards.name(path)} has missing values ({unit} "
                     f"{', '.join(str(first_row + int(w) + plus) for w in where)}"
                     f"{', ...' if count > len(where) else ''})" for name, count, where in gaps)
    raise TableProblem(rows.loc, f"{said}; fill or drop them before training")


def _file_start(rows: TableRows, piece: Piece) -> int:
    return next(p.start for p in rows.pieces if p.file == piece.file)


def load_streamed(cfg, folder: Path, seed: int, batch_size: int, decision: Decision,
                  shards: dict[str, Shards], saved: dict[str, Any] | None = None) -> Streamed:
    """The splits of a streamed table (`shards`: the files of each path field). `saved`:
    the run's data/ files, whose stats stand in for the pass when they were made from this
    very data section (a resume)."""
    main = shards["path"]
    p = plan(main.schema, cfg)
    loc = ("data", "path")
    counted = count_splits(cfg, shards, seed, p.labels)
    split, tally, pieces, by_split = counted.split, counted.tally, counted.pieces, \
        counted.by_split
    train_classes = {name: tally.classes("train", name) or [] for name in p.classes}
    unseen_classes(tally, train_classes, counted.where)
    window = decision.window or window_rows(
        cfg.shuffle_window or max(1, WINDOW_BYTES // _row_bytes(main, p)), batch_size)
    key = data_key(cfg, seed)
    # One dict for every split's rows: filled with the vocabularies once they are known.
    artifacts = {"features": p.groups, "labels": p.labels, "vocabularies": {},
                 "classes": train_classes, "text": list(p.text)}
    splits: dict[str, TableRows | None] = {
        "train": TableRows(main, pieces, split, 0, artifacts, window, main.shown, loc,
                           tally.split_json("train"), counts=by_split[:, 0]),
        "validation": None, "test": None}
    for name in ("validation", "test"):
        code = CODES[name]
        if getattr(cfg, f"{name}_split"):
            splits[name] = TableRows(main, pieces, split, code, artifacts, window,
                                     counted.where[name][0], loc, tally.split_json(name),
                                     counts=by_split[:, code])
        elif name in counted.others:
            other, at = shards[f"{name}_path"], ("data", f"{name}_path")
            splits[name] = TableRows(other, counted.others[name], None, code, artifacts,
                                     window, other.shown, at, tally.split_json(name))
    summary = split_summary(tally, split, cfg.split, by_split.sum(axis=0))
    saved = saved or {}
    if saved.get(STREAM_FILE, {}).get("key") == key and STATS_FILE in saved and \
            "table.json" in saved:
        learned_table, stats = saved["table.json"], saved[STATS_FILE]
    else:
        passes = [(splits["train"], True)] + [
            (s, False) for s in (splits["validation"], splits["test"])
            if s is not None and s.shards is not main]
        learned_table, stats = learned_artifacts(p, first_pass(passes, p), cfg)
    artifacts.update(learned_table)
    n = counted.rows
    record = {"stream": True, "window": window, "key": key, "rows": n,
              "files": len(main.files), "pieces": len(pieces)}
    notes = [Decision(True, decision.estimate, decision.limit, decision.asked,
                      window).line(main, n), *category_notes(artifacts, stats)]
    return Streamed(splits, artifacts, stats, summary, record, notes)


@dataclass
class Counted:
    """A streamed table's rows counted by split, and its labels by split, from one pass
    over the label columns: each row's split drawn from its position (`split`)."""

    split: RowSplit | None
    tally: Tally
    pieces: list[Piece]  # of the `path` table
    by_split: np.ndarray  # (pieces, 3): each piece's rows of train, validation, test
    others: dict[str, list[Piece]]  # the pieces of validation_path, test_path
    where: dict[str, tuple[str, tuple]]  # each held-out split's name and loc

    @property
    def rows(self) -> int:
        return int(self.by_split.sum())


def count_splits(cfg, shards: dict[str, Shards], seed: int, labels: list[str]) -> Counted:
    """The label pass of a streamed table (and of its validation_path, test_path): what
    the run, `validate` and the split warnings know of its splits. TableProblem when no
    training row is left."""
    main, loc = shards["path"], ("data", "path")
    split = None
    if cfg.validation_split or cfg.test_split:
        tail = cfg.split == "tail"
        known = file_rows(main, (labels or main.columns)[0], loc) if tail else None
        split = RowSplit(seed, sum(known) if known else 0, cfg.validation_split,
                         cfg.test_split, "tail" if tail else "random")
    tally = Tally(labels, main.schema)
    pieces = table_pieces(main, count_labels(main, labels, split, tally, 0, loc))
    by_split = _split_counts(pieces, split)
    if not by_split[:, 0].sum():
        raise TableProblem(loc, f"{main.shown} leaves no training rows")
    others, where = {}, {}
    for name in ("validation", "test"):
        if getattr(cfg, f"{name}_split"):
            where[name] = (f"{main.shown} (its {name} rows)", loc)
        elif f"{name}_path" in shards:
            other, at = shards[f"{name}_path"], ("data", f"{name}_path")
            where[name] = (other.shown, at)
            others[name] = table_pieces(other, count_labels(other, labels, None, tally,
                                                            CODES[name], at))
    return Counted(split, tally, pieces, by_split, others, where)


def _split_counts(pieces: list[Piece], split: RowSplit | None) -> np.ndarray:
    """(pieces, 3): each piece's rows of train, validation and test, from the positions
    (a piece at a time: nothing a row is kept)."""
    out = np.zeros((len(pieces), 3), dtype=np.int64)
    for i, piece in enumerate(pieces):
        if split is None:
            out[i, 0] = piece.rows
        else:
            out[i] = np.bincount(split.codes(piece.start, piece.rows), minlength=3)
    return out


def split_summary(tally: Tally, split: RowSplit | None, asked: str, rows: np.ndarray) -> dict:
    """split.json of a streamed table: as Cut.summary() says it, the method as drawn
    (stratified when the label holds classes), and that each row was drawn on its own."""
    label = tally.labels[0] if len(tally.labels) == 1 else None
    if split is not None and split.method == "tail":
        method = "tail"
    elif label is not None and asked in ("auto", "stratified") and \
            tally.is_classes(label, asked == "stratified"):
        method = "stratified"
    else:
        method = "random"
    summary = {"method": method, "sorted_by_label": tally.sorted_by_label(),
               "rows": {"train": int(rows[0]), "validation": int(rows[1]),
                        "test": int(rows[2])}}
    if split is not None and method != "tail":
        summary["drawn"] = "each row from (seed, its position): shares within binomial noise"
    return summary


def _row_bytes(shards: Shards, p) -> int:
    """Bytes one row takes once encoded: 4 a number or category, a text value's average
    size (from the Parquet footers) and a Python string's 50 for text."""
    size = 4 * len(p.labels)
    text_bytes = 0
    if p.text and shards.source == "parquet":
        total, rows = estimated_bytes(shards, p.text)
        text_bytes = total // max(1, rows)
    for column in feature_columns(p.groups):
        size += 50 + text_bytes // max(1, len(p.text)) if column in p.text else 4
    return max(1, size)


def category_notes(artifacts: dict, stats: dict) -> list[str]:
    """A line for each category whose values were cut to the `max_categories` most
    frequent: the rest share the unknown id 0."""
    lines = []
    for column, vocab in artifacts.get("vocabularies", {}).items():
        distinct = stats.get("distinct", {}).get(column)
        if distinct is not None and distinct > len(vocab):
            lines.append(f"data: column {column!r}: the {len(vocab):,} most frequent of its "
                         f"{distinct:,} values kept (max_categories); the rest share the "
                         "unknown id 0")
    return lines
