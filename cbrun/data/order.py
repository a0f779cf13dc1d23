"""The order a streamed table's rows are trained in: a pure function of (seed, epoch), at
the granularity streaming allows, and cheap to enter at any batch (a resume inside an
epoch). No TensorFlow, no reading: only which rows come when.

A table is read by pieces (a Parquet row group, a whole CSV file). Epoch k:

1. the pieces, in an order drawn from (seed, k);
2. their rows of the split (held-out rows left out), one piece after the other, each
   piece's rows in file order;
3. that sequence cut into windows of `window` rows (a multiple of the batch size), and the
   rows of window j put in an order drawn from (seed, k, j).

So a row can land anywhere in its window, and a window holds the rows of the pieces it
spans: with pieces smaller than the window, rows of several pieces chosen at random mix
in every batch; with pieces larger than it, a batch holds rows of one or two pieces
(write the table with smaller row groups, or a larger window, for more mixing).
`shuffle: false` is the file order: no piece order, no window order.

To start at batch b (a resume), the windows before b's are skipped without reading them,
the pieces before its first row too; what is read and dropped is at most one piece's rows
before the window and one window's rows before the batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

# A stream of the seed of its own: the streamed order never repeats the draws of the
# held-out rows (splits._STREAM) or of the in-memory order.
_STREAM = 0x57AB1E


def window_rows(rows_per_window: int, batch_size: int) -> int:
    """A window is a whole number of batches, at least one: a batch never spans two."""
    return max(batch_size, rows_per_window - rows_per_window % batch_size)


@dataclass(frozen=True)
class Step:
    """Read piece `piece`, skip its first `skip` rows of the split, take the next `take`."""

    piece: int
    skip: int
    take: int


@dataclass(frozen=True)
class Window:
    """One window of an epoch: the pieces to read for it, in order, and the order of its
    rows (None: as read), from `drop` on (a resume inside it)."""

    index: int
    steps: tuple[Step, ...]
    order: np.ndarray | None
    drop: int = 0

    @property
    def rows(self) -> int:
        return sum(step.take for step in self.steps)


def piece_order(counts: np.ndarray, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    """The pieces of epoch `epoch` that hold rows of the split, in the order they are read."""
    held = np.flatnonzero(np.asarray(counts) > 0)
    if not shuffle:
        return held
    return held[np.random.default_rng([seed, epoch, _STREAM]).permutation(len(held))]


def windows(counts: np.ndarray, window: int, seed: int, epoch: int, shuffle: bool,
            start_row: int = 0) -> Iterator[Window]:
    """The windows of one epoch from its `start_row`-th row on (a multiple of the batch
    size when it is a resume's); `counts`: the split's rows in each piece, in file order."""
    counts = np.asarray(counts, dtype=np.int64)
    pieces = piece_order(counts, seed, epoch, shuffle)
    sizes = counts[pieces]
    total = int(sizes.sum())
    if start_row >= total:
        return
    first = start_row // window
    position = first * window  # where the first window starts, in the epoch's sequence
    ends = np.cumsum(sizes)
    k = int(np.searchsorted(ends, position, side="right"))  # the piece holding `position`
    skip = position - (int(ends[k - 1]) if k else 0)
    for index in range(first, -(-total // window)):
        need = min(window, total - index * window)
        steps = []
        while need:
            left = int(sizes[k]) - skip
            take = min(left, need)
            steps.append(Step(int(pieces[k]), skip, take))
            need -= take
            skip += take
            if skip == sizes[k]:
                k, skip = k + 1, 0
        rows = sum(s.take for s in steps)
        order = (np.random.default_rng([seed, epoch, _STREAM, index]).permutation(rows)
                 if shuffle else None)
        drop = start_row - index * window if index == first else 0
        yield Window(index, tuple(steps), order, drop)


def epoch_rows(counts: np.ndarray, window: int, seed: int, epoch: int, shuffle: bool,
               start_row: int = 0) -> np.ndarray:
    """The epoch's order as positions among the split's rows (file order): what the
    windows say, spelled out. For tests and small tables; a stream never holds it."""
    counts = np.asarray(counts, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    out = []
    for win in windows(counts, window, seed, epoch, shuffle, start_row):
        rows = np.concatenate([offsets[s.piece] + s.skip + np.arange(s.take)
                               for s in win.steps])
        if win.order is not None:
            rows = rows[win.order]
        out.append(rows[win.drop:])
    return np.concatenate(out) if out else np.zeros(0, np.int64)
