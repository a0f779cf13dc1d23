"""A streamed table's labels, counted instead of kept: per split and per label column, how
many rows hold each value (while the values are few enough to be classes), the count, sum,
smallest and largest; and whether the rows are sorted by the one label (a run of rows per
class). Memory grows with the classes, never with the rows: what the split warnings, the
baseline, the data checks and the unseen-class check read for a streamed table, where a
table in memory gives them its label array.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cbrun.data.learn import DISTINCT_MOST
from cbrun.data.splits import MAX_CLASSES

SPLITS = ("train", "validation", "test")
COUNTED_MOST = 65_536  # distinct values of a number label counted (text: DISTINCT_MOST)


@dataclass
class _Column:
    text: bool
    floats: bool
    counts: dict | None = field(default_factory=dict)
    rows: int = 0
    total: float = 0.0
    low: Any = None
    high: Any = None

    def add(self, column) -> None:
        import pyarrow.compute as pc

        n = len(column)
        if n == 0:
            return
        self.rows += n
        if not self.text:
            values = np.asarray(column.to_numpy(zero_copy_only=False))
            self.total += float(values.sum(dtype=np.float64))
            low, high = values.min(), values.max()
            self.low = low if self.low is None else min(self.low, low)
            self.high = high if self.high is None else max(self.high, high)
        if self.counts is None or self.floats:
            return
        found = pc.value_counts(column)
        for value, count in zip(found.field("values").to_pylist(),
                                found.field("counts").to_pylist(), strict=True):
            if value is not None:
                self.counts[value] = self.counts.get(value, 0) + count
        most = DISTINCT_MOST if self.text else COUNTED_MOST
        if len(self.counts) > most:
            self.counts = None


class Tally:
    """Feed it the label columns of a table's record batches in file order, with each
    row's split (`add`)."""

    def __init__(self, labels: list[str], schema):
        import pyarrow as pa

        def column(name: str) -> _Column:
            kind = schema.field(name).type
            if pa.types.is_dictionary(kind):
                kind = kind.value_type
            return _Column(pa.types.is_string(kind) or pa.types.is_large_string(kind),
                           pa.types.is_floating(kind))

        self.labels = labels
        self.columns = {split: {name: column(name) for name in labels} for split in SPLITS}
        self.runs = 0  # rows whose label differs from the row before (file order)
        self._last: Any = None
        self.rows = 0

    def add(self, batch, codes: np.ndarray | None, code: int = 0, order: bool = True) -> None:
        """`codes`: each row's split (rowsplit.CODES), or None when all are split `code`.
        `order`: these rows continue the table whose sortedness is judged."""
        import pyarrow as pa

        for index, split in enumerate(SPLITS):
            if codes is None:
                part = batch if index == code else None
            else:
                mask = codes == index
                part = None if not mask.any() else (
                    batch if mask.all() else batch.filter(pa.array(mask)))
            if part is not None:
                for name in self.labels:
                    self.columns[split][name].add(part.column(name))
        if order and len(self.labels) == 1 and batch.num_rows:
            values = batch.column(self.labels[0]).to_numpy(zero_copy_only=False)
            self.runs += int(np.count_nonzero(values[1:] != values[:-1]))
            if self.rows and values[0] != self._last:
                self.runs += 1
            self._last = values[-1]
            self.rows += len(values)

    def classes(self, split: str, name: str) -> list | None:
        counts = self.columns[split][name].counts
        return None if counts is None else sorted(counts)

    def is_classes(self, name: str, asked: bool = False) -> bool:
        """Whether a label holds classes as splits.class_codes judges an array: text,
        true/false, or integers with few distinct values (any integers when `asked`)."""
        every: set = set()
        for split in SPLITS:
            column = self.columns[split][name]
            if column.floats or column.counts is None:
                return False
            every.update(column.counts)
        if not self.columns["train"][name].text and len(every) > MAX_CLASSES and not asked:
            return False
        return bool(every)

    def sorted_by_label(self) -> bool:
        """Rows in blocks of one class each, as splits.is_sorted_by judges them."""
        if len(self.labels) != 1 or not self.is_classes(self.labels[0]) or self.rows < 20:
            return False
        classes = len(set().union(*(self.columns[s][self.labels[0]].counts for s in SPLITS)))
        return classes >= 2 and self.runs + 1 == classes and self.rows >= 10 * classes

    def split_json(self, split: str) -> dict:
        """What a split's labels hold ({column: {rows, sum, min, max, counts}}): a
        TableRows' view of its own split."""
        out = {}
        for name, column in self.columns[split].items():
            out[name] = {"rows": column.rows, "sum": column.total,
                         "min": _plain(column.low), "max": _plain(column.high),
                         "text": column.text, "floats": column.floats,
                         "counts": None if column.counts is None else dict(column.counts)}
        return out


def _plain(value):
    return value.item() if hasattr(value, "item") else value


@dataclass(frozen=True)
class Counted:
    """A split's labels as counts (what the split warnings read of a streamed table):
    `values` and how many rows hold each."""

    values: np.ndarray
    counts: np.ndarray

    def __len__(self) -> int:
        return int(self.counts.sum())

    def counted(self) -> tuple[np.ndarray, np.ndarray]:
        return self.values, self.counts
