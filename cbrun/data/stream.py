"""Tables bigger than memory, without TensorFlow: whether a table is streamed, and a
streamed table's splits, learned from and read a window at a time.

`stream: auto` (the default) reads a table whole when its estimated size in memory is
under a quarter of the memory available, and streams it otherwise; `true` and `false`
force either. A run records what it chose (data/stream.json) and its resume reads the
table the same way, whatever the memory then.

A streamed table is read four times over, never held:
1. the footers and headers (cbrun/data/shards.py): its files, row groups and columns;
2. its label columns alone (for Parquet, only their bytes): the held-out rows are drawn
   from them exactly as for a table in memory (cbrun/data/splits.draw), so both paths
   hold out the same rows, and the labels of every split stay in memory (4 bytes a row);
3. one pass over every row (`first_pass`): missing values and rows that break a CSV are
   named, and what training learns from its rows (vocabularies, classes, each column's
   mean and variance: cbrun/data/learn.py) is gathered; saved in the run's data/ and read
   back by its resume instead of a second pass;
4. each epoch, the windows of its order (cbrun/data/order.py), one after the other.
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
from cbrun.data.shards import Piece, Shards, estimated_bytes, parquet_pieces
from cbrun.data.tables import (
    TableProblem,
    encode_table,
    feature_columns,
    learned_artifacts,
    learner,
    plan,
)

STREAM_FILE = "stream.json"  # in the run's data/: whether it streamed, and its window
STATS_FILE = "stats.json"  # in the run's data/: what the training rows hold
SHARE = 4  # auto streams a table estimated to take more than 1/SHARE of the memory left
WINDOW_BYTES = 64 << 20  # the rows of a window, encoded, by default
READ_ROWS = 1 << 16  # rows per record batch read
SPLIT_CODES = {"train": 0, "validation": 1, "test": 2}


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


# ---------------------------------------------------------------- labels and the draw

@dataclass
class Labels:
    """The label columns of every row of a table, in file order: text labels as codes
    (their class's index among the sorted classes), others as numbers."""

    values: dict[str, np.ndarray]
    classes: dict[str, list]  # a text label's classes (all rows')
    coded: Any  # splits.Coded of the one label, or None
    row_counts: list[int]  # rows of each file


def read_labels(shards: Shards, labels: list[str], loc=("data", "path")) -> Labels:
    import pyarrow as pa
    import pyarrow.compute as pc

    from cbrun.data.splits import coded

    reader = Reader(shards, loc)
    chunks: dict[str, list] = {name: [] for name in labels}
    counts = []
    for index in range(len(shards.files)):
        whole = Piece(index, None, 0, 0)
        rows = 0
        for batch in reader.batches(whole, labels):
            rows += batch.num_rows
            for name in labels:
                column = batch.column(name)
                if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
                    column = pc.dictionary_encode(column)  # a class a row, not a string
                chunks[name].append(column)
        counts.append(rows)
    values, classes, found = {}, {}, {}
    for name in labels:
        kind = shards.schema.field(name).type
        column = pa.chunked_array(chunks.pop(name), type=chunks_type(kind))
        text = pa.types.is_string(kind) or pa.types.is_large_string(kind)
        if text:
            found[name] = coded(column)
            values[name] = found[name].asked
            classes[name] = list(found[name].classes)
        else:
            values[name] = column.to_numpy()
            if len(labels) == 1:
                found[name] = coded(column)
    return Labels(values, classes, found.get(labels[0]) if len(labels) == 1 else None,
                  counts)


def chunks_type(kind):
    import pyarrow as pa

    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return pa.dictionary(pa.int32(), kind)
    return kind


def encode_labels(labels: Labels, rows: np.ndarray | None, train_classes: dict[str, list],
                  name: str, loc) -> Any:
    """The targets of the rows `rows` (all for None), as encode_table makes them: a text
    label's index among the training classes (a class training lacks is a TableProblem),
    integers and true/false as int32, other numbers as float32."""
    out = {}
    for column, values in labels.values.items():
        mine = values if rows is None else values[rows]
        if column in labels.classes:
            every = labels.classes[column]
            index = {value: i for i, value in enumerate(train_classes[column])}
            remap = np.array([index.get(value, -1) for value in every], dtype=np.int64)
            mine = remap[mine]
            if (mine < 0).any():
                unseen = sorted({every[c] for c in np.unique(
                    (values if rows is None else values[rows])[mine < 0])})
                raise TableProblem(loc, f"{name} has label value{'s' if len(unseen) > 1 else ''}"
                                        f" {', '.join(map(repr, unseen[:5]))} in column "
                                        f"{column!r} that the training rows never show "
                                        f"(classes: {', '.join(map(repr, train_classes[column][:10]))})")
            mine = mine.astype(np.int32)
        elif mine.dtype.kind == "f":
            mine = mine.astype(np.float32)
        else:
            mine = mine.astype(np.int32)
        out[column] = mine
    return out if len(out) > 1 else next(iter(out.values()))


# ---------------------------------------------------------------- one split's rows

@dataclass
class TableRows:
    """The rows of one split of a streamed table: which pieces hold them, their labels in
    memory, and how their columns become model inputs (table.json's artifacts)."""

    shards: Shards
    pieces: list[Piece]
    which: np.ndarray | None  # each table row's split code (SPLIT_CODES); None: all this one's
    code: int
    y: Any  # the split's targets, in file order
    artifacts: dict
    window: int  # rows per window (a whole number of batches)
    name: str
    loc: tuple = ("data", "path")
    counts: np.ndarray = field(init=False)
    offsets: np.ndarray = field(init=False)

    def __post_init__(self):
        if self.which is None:
            self.counts = np.array([p.rows for p in self.pieces], dtype=np.int64)
        else:
            self.counts = np.array([int(np.count_nonzero(
                self.which[p.start:p.start + p.rows] == self.code)) for p in self.pieces],
                dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(np.int64)
        self._reader = None

    def __len__(self) -> int:
        return int(self.counts.sum())

    def subset(self, positions: np.ndarray) -> TableRows:
        """The rows at `positions` (among this split's, in file order) as a split of their
        own (`data.fraction`, `overfit_batches`): still read from the files, the others
        skipped as the held-out rows are."""
        from dataclasses import replace

        from cbrun.data.splits import take

        positions = np.asarray(positions, dtype=np.int64)
        total = self.pieces[-1].start + self.pieces[-1].rows if self.pieces else 0
        if self.which is None:
            mine = np.concatenate([np.arange(p.start, p.start + p.rows) for p in self.pieces]
                                  or [np.zeros(0, np.int64)])
        else:
            mine = np.flatnonzero(self.which == self.code)
        which = np.full(total, -1, dtype=np.int8)
        which[mine[positions]] = self.code
        return replace(self, which=which, y=take(self.y, positions))

    @property
    def groups(self):
        return self.artifacts["features"]

    @property
    def columns(self) -> list[str]:
        return feature_columns(self.groups)

    def text_group(self, columns: list[str]) -> bool:
        return bool(set(self.artifacts.get("text", [])).intersection(columns))

    @property
    def reader(self) -> Reader:
        if self._reader is None:
            self._reader = Reader(self.shards, self.loc)
        return self._reader

    def _mask(self, piece: Piece) -> np.ndarray | None:
        if self.which is None:
            return None
        return self.which[piece.start:piece.start + piece.rows] == self.code

    def _rows_of(self, piece: Piece, skip: int, take: int) -> Iterator:
        """The piece's rows of this split from the `skip`-th, `take` of them, as record
        batches (filtered before they are encoded)."""
        import pyarrow as pa

        mask = self._mask(piece)
        at = seen = 0
        for batch in self.reader.batches(piece, self.columns):
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

    def encode(self, batch) -> Any:
        x, _ = encode_table(batch, self.artifacts, self.name, labels=False, text_objects=True)
        return x

    def _window_arrays(self, win: Window) -> tuple[Any, Any]:
        parts = [self.encode(batch) for step in win.steps
                 for batch in self._rows_of(self.pieces[step.piece], step.skip, step.take)]
        positions = np.concatenate([self.offsets[s.piece] + s.skip + np.arange(s.take)
                                    for s in win.steps])
        return _join(parts), _take(self.y, positions)

    def windows(self, seed: int, epoch: int, shuffle: bool, start_row: int = 0) -> Iterator:
        """(x, y, order) of each window of the epoch, from its `start_row`-th row: the
        window's rows as read, and the order to take them in (from the window's `drop`-th
        on)."""
        for win in windows(self.counts, self.window, seed, epoch, shuffle, start_row):
            x, y = self._window_arrays(win)
            order = win.order if win.order is not None else np.arange(win.rows)
            yield x, y, order[win.drop:].astype(np.int64)

    def rows_at(self, positions: np.ndarray) -> Any:
        """The inputs of the split's rows at `positions` (a few: a callback's samples, an
        export's): read from the pieces that hold them."""
        positions = np.asarray(positions, dtype=np.int64).reshape(-1)
        found: dict[int, Any] = {}
        ends = self.offsets + self.counts
        for index in np.unique(np.searchsorted(ends, positions, side="right")):
            first = int(self.offsets[index])
            mine = positions[(positions >= first) & (positions < ends[index])] - first
            x = _join([self.encode(b) for b in self._rows_of(self.pieces[index], 0,
                                                              int(self.counts[index]))])
            for at in np.unique(mine):
                found[int(first + at)] = _take(x, np.array([at]))
        return _join([found[int(p)] for p in positions]) if len(positions) else \
            _take(self.encode(next(self._rows_of(self.pieces[0], 0, 1))), np.array([], int))


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
        x = self.rows.rows_at(np.asarray(positions))
        return x[self.key] if self.key is not None else x


def inputs_of(rows: TableRows) -> Any:
    groups = rows.groups
    if isinstance(groups, dict):
        return {key: ColumnGroup(rows, key) for key in groups}
    return ColumnGroup(rows, None)


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
    from cbrun.data.splits import draw

    main = shards["path"]
    p = plan(main.schema, cfg)
    labels = read_labels(main, p.labels)
    n = sum(labels.row_counts)
    cut = draw(n, cfg.validation_split, cfg.test_split, cfg.split, seed, labels=labels.coded)
    summary = cut.summary()
    if len(cut.train) == 0:
        raise TableProblem(("data", "path"), f"{main.shown} leaves no training rows")
    which = None
    if cfg.validation_split or cfg.test_split:
        which = np.zeros(n, dtype=np.int8)
        which[cut.validation] = SPLIT_CODES["validation"]
        which[cut.test] = SPLIT_CODES["test"]
    pieces = table_pieces(main, labels.row_counts)
    train_classes = {name: sorted({labels.classes[name][c] for c in np.unique(
        values[cut.train])}) for name, values in labels.values.items()
        if name in labels.classes}
    window = decision.window or window_rows(
        cfg.shuffle_window or max(1, WINDOW_BYTES // _row_bytes(main, p)), batch_size)
    key = data_key(cfg, seed)
    # One dict for every split's rows: filled with the vocabularies once they are known.
    artifacts = {"features": p.groups, "labels": p.labels, "vocabularies": {},
                 "classes": train_classes, "text": list(p.text)}
    loc = ("data", "path")
    splits: dict[str, TableRows | None] = {
        "train": TableRows(main, pieces, which, 0, encode_labels(
            labels, cut.train if which is not None else None, train_classes, main.shown, loc),
            artifacts, window, main.shown, loc),
        "validation": None, "test": None}
    for split in ("validation", "test"):
        if getattr(cfg, f"{split}_split"):
            where = f"{main.shown} (its {split} rows)"
            splits[split] = TableRows(main, pieces, which, SPLIT_CODES[split], encode_labels(
                labels, getattr(cut, split), train_classes, where, loc), artifacts, window,
                where, loc)
        elif f"{split}_path" in shards:
            other, at = shards[f"{split}_path"], ("data", f"{split}_path")
            found = read_labels(other, p.labels, at)
            splits[split] = TableRows(other, table_pieces(other, found.row_counts), None, 0,
                                      encode_labels(found, None, train_classes, other.shown, at),
                                      artifacts, window, other.shown, at)
    del labels, cut
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
    record = {"stream": True, "window": window, "key": key, "rows": n,
              "files": len(main.files), "pieces": len(pieces)}
    notes = [Decision(True, decision.estimate, decision.limit, decision.asked,
                      window).line(main, n), *category_notes(artifacts, stats)]
    return Streamed(splits, artifacts, stats, summary, record, notes)


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
