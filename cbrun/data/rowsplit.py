"""Which split a streamed table's row belongs to, decided row by row from (seed, the row's
position in the table) and nothing else: no array of the table's rows is ever built, so a
streamed run's memory does not grow with its rows.

- `random` and `stratified`: each row draws a number u in [0, 1) from a seeded hash of its
  position (splitmix64); it is a test row when u < test, a validation row when u < test +
  (1 - test) * validation, a training row otherwise. So every row, whatever its class, is
  held out with the asked probability, independently of the others: a split's share of
  the table, and of every class, is the asked one within binomial noise (a class of n rows
  gives validation share * n of them, give or take sqrt(n * share * (1 - share))). The
  in-memory draw (cbrun/data/splits.draw) keeps its exact counts; a stream cannot without
  an array of its rows.
- `tail`: by position against the table's row count, exactly as in memory.

`data.fraction` on a streamed split keeps a row when a second hash of its position (a
stream of its own per split) falls under the fraction: the same kind of draw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cbrun.data.splits import held_out_sizes

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_SPLIT_STREAM = 0x5EED5  # as splits._STREAM: the held-out rows
_SHARE_STREAM = 0x5A4E  # as splits._SHARE_STREAM: data.fraction
CODES = {"train": 0, "validation": 1, "test": 2}


def _key(*parts: int) -> int:
    key = 0
    for part in parts:
        key = _mix_one((key ^ (int(part) & _MASK)) * _GOLDEN & _MASK)
    return key


def _mix_one(z: int) -> int:
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9 & _MASK
    z = (z ^ (z >> 27)) * 0x94D049BB133111EB & _MASK
    return z ^ (z >> 31)


def unit(key: int, start: int, count: int) -> np.ndarray:
    """u in [0, 1) of the positions start .. start + count - 1: splitmix64 of key + position,
    its top 53 bits. The same numbers however the positions are cut into calls."""
    z = np.arange(start, start + count, dtype=np.uint64) + np.uint64(key)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


@dataclass(frozen=True)
class RowSplit:
    """The held-out rows of a streamed table of `rows` rows: a pure function of the seed and
    a row's position."""

    seed: int
    rows: int
    validation: float
    test: float
    method: str  # tail, or random (stratified streams draw as random does)

    def codes(self, start: int, count: int) -> np.ndarray:
        """Each row's split (CODES) of positions start .. start + count - 1."""
        out = np.zeros(count, dtype=np.int8)
        if not (self.validation or self.test) or count == 0:
            return out
        if self.method == "tail":
            n_val, n_test = held_out_sizes(self.rows, self.validation, self.test)
            at = np.arange(start, start + count, dtype=np.int64)
            out[at >= self.rows - n_test - n_val] = CODES["validation"]
            out[at >= self.rows - n_test] = CODES["test"]
            return out
        u = unit(_key(self.seed, _SPLIT_STREAM), start, count)
        out[u < self.test + (1.0 - self.test) * self.validation] = CODES["validation"]
        out[u < self.test] = CODES["test"]
        return out


@dataclass(frozen=True)
class Keep:
    """data.fraction of a streamed split: a row is kept when its own draw is under
    `fraction` (`split`: the split's index, a stream each)."""

    seed: int
    fraction: float
    split: int

    def mask(self, start: int, count: int) -> np.ndarray:
        return unit(_key(self.seed, _SHARE_STREAM, self.split), start, count) < self.fraction
