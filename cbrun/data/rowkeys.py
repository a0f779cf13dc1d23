"""Which rows of a table are the same: a 64-bit key per row, built column by column in
numpy, rows grouped by sorting the keys, and every group confirmed value by value.

A column's values become integers that are equal exactly when the values are: the bits of
a number (-0.0 and 0.0 alike, every NaN alike), the index of a text in the column's
dictionary. The row key mixes them (splitmix64). Two different rows share a key with
probability about n^2 / 2^65; the confirmation drops such a pair rather than report it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_NAN = np.float64("nan").view(np.uint64)


def _mix(x: np.ndarray, scratch: np.ndarray | None = None) -> np.ndarray:
    """splitmix64's finaliser, in place on a uint64 array (`scratch`: one of its size)."""
    t = np.empty_like(x) if scratch is None else scratch
    for shift, factor in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB), (31, None)):
        np.right_shift(x, np.uint64(shift), out=t)
        x ^= t
        if factor is not None:
            x *= np.uint64(factor)
    return x


@dataclass(frozen=True)
class Key:
    """A column's values as uint64s, equal exactly where the values are."""

    values: np.ndarray
    missing: np.ndarray | None  # the rows with no value, or None when there are none
    distinct: int | None = None  # distinct values (missing ones aside), where known

    def count_distinct(self) -> int:
        if self.distinct is not None:
            return self.distinct
        values = self.values if self.missing is None else self.values[~self.missing]
        if not len(values):
            return 0
        ordered = np.sort(values)  # a sort beats pyarrow's hash table on a million floats
        return int(1 + np.count_nonzero(ordered[1:] != ordered[:-1]))


def column_key(column) -> Key | None:
    """The Key of a pyarrow column, or None for a type with none (lists, structs)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_dictionary(column.type):  # files' dictionaries differ: their values do not
        column = column.cast(column.type.value_type)
    kind = column.type
    missing = column.is_null().to_numpy(zero_copy_only=False) if column.null_count else None
    if pa.types.is_floating(kind):
        values = column.cast(pa.float64()).fill_null(0.0).to_numpy() + 0.0  # -0.0 is 0.0
        bits = values.view(np.uint64)
        nan = np.isnan(values)
        if nan.any():
            bits[nan] = _NAN
        return Key(bits, missing)
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        values = column.fill_null(False if pa.types.is_boolean(kind) else 0).to_numpy(
            zero_copy_only=False)
        return Key(values.astype(np.int64).view(np.uint64), missing)
    try:
        encoded = pc.dictionary_encode(column)
    except pa.ArrowNotImplementedError:
        return None
    codes = encoded.indices.fill_null(0).to_numpy(zero_copy_only=False)
    return Key(codes.astype(np.uint64), missing, len(encoded.dictionary))


def keyable(column) -> bool:
    """Whether the column's type has a key (numbers, true/false, text, dates, bytes)."""
    return column_key(column.slice(0, 0)) is not None


def keyed_columns(table, names: list[str]) -> Iterator[tuple[str, Key]]:
    """(name, key) of each column of `names` that has a key."""
    for name in names:
        found = column_key(table.column(name))
        if found is not None:
            yield name, found


class Hasher:
    """Row hashes, a column's key at a time, in place (`hashes` changes with each column:
    copy it to keep a stage)."""

    def __init__(self, rows: int, start: np.ndarray | None = None):
        self.hashes = np.zeros(rows, dtype=np.uint64) if start is None else start.copy()
        self._scratch = np.empty_like(self.hashes)
        self.added = 0

    def add(self, key: Key) -> None:
        self.added += 1
        salt = _mix(np.array([self.added], dtype=np.uint64) * _GOLDEN)[0]
        mixed = self._scratch
        np.bitwise_xor(key.values, salt, out=mixed)
        if key.missing is not None:
            mixed[key.missing] = ~salt  # a missing value is a value of its own
        # The multiplier spreads the row so far before the column joins it; the mix is a
        # bijection, so two rows collide only where the sums do.
        self.hashes *= _GOLDEN
        self.hashes += mixed
        _mix(self.hashes, mixed)


def row_hashes(table, names: list[str], start: np.ndarray | None = None) -> np.ndarray:
    """One uint64 per row from the columns `names`, in their order; `start`: the hashes
    of other columns to go on from (a row's features, then its label)."""
    hasher = Hasher(table.num_rows, start)
    for _, key in keyed_columns(table, names):
        hasher.add(key)
    return hasher.hashes


def groups(hashes: np.ndarray) -> np.ndarray:
    """The group of each row: the index of the first row with the same hash."""
    order = np.argsort(hashes, kind="stable")  # equal hashes keep their rows' order
    ordered = hashes[order]
    starts = np.ones(len(order), dtype=bool)
    starts[1:] = ordered[1:] != ordered[:-1]
    first_in_sorted = np.maximum.accumulate(np.where(starts, np.arange(len(order)), 0))
    first = np.empty(len(order), dtype=np.int64)
    first[order] = order[first_in_sorted]
    return first


def confirm(table, names: list[str], first: np.ndarray) -> np.ndarray:
    """`first` with every row that differs from its group's first row in a value (a hash
    collision) made a group of its own."""
    rows = np.flatnonzero(first != np.arange(len(first)))
    if not len(rows):
        return first
    same = np.ones(len(rows), dtype=bool)
    for _, key in keyed_columns(table, names):
        same &= key.values[rows] == key.values[first[rows]]
        if key.missing is not None:
            same &= key.missing[rows] == key.missing[first[rows]]
    first = first.copy()
    first[rows[~same]] = rows[~same]
    return first
