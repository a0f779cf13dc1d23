"""What is learned from a table's training rows, in one pass over them: each number
column's count, mean and variance (what an adapted Normalization holds), each text
column's values with their counts (vocabularies, classes, an adapted StringLookup), and
each `text:` column's words as TextVectorization's defaults make them (an adapted
TextVectorization's vocabulary, without a second read of the rows). No TensorFlow:
pyarrow's compute kernels and numpy.

The streamed path feeds the rows a record batch at a time, the in-memory path all at
once; the results are the same to the last bit, because the numbers are summed in fixed
blocks of BLOCK rows of the training rows in file order (float64, numpy's sums), whatever
the chunks they came in, and the blocks are combined in order (Chan's formula). Counts are
exact and do not depend on the order at all.

Memory is bounded: a number column holds at most one block, a text column at most
DISTINCT_MOST distinct values (past them it is no category: the pass says so and stops
counting it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

BLOCK = 1 << 16  # rows per block of the statistics
DISTINCT_MOST = 1_000_000  # distinct values counted in one text column
KEPT = 100_000  # values kept per text column in stats.json (the most frequent)


@dataclass
class _Moments:
    count: int = 0
    mean: float = 0.0
    m2: float = 0.0  # the sum of squared deviations from the mean

    def add_block(self, values: np.ndarray) -> None:
        n = len(values)
        if n == 0:
            return
        mean = float(values.sum()) / n
        m2 = float(np.square(values - mean).sum())
        if self.count == 0:
            self.count, self.mean, self.m2 = n, mean, m2
            return
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.count * n / total
        self.count = total

    def summary(self) -> dict[str, float]:
        variance = self.m2 / self.count if self.count else 0.0
        return {"count": self.count, "mean": self.mean, "variance": variance}


@dataclass
class _Blocks:
    """Values of one column cut into BLOCK-row blocks, however they arrive."""

    moments: _Moments = field(default_factory=_Moments)
    pending: list = field(default_factory=list)
    waiting: int = 0

    def add(self, values: np.ndarray) -> None:
        self.pending.append(values)
        self.waiting += len(values)
        if self.waiting < BLOCK:
            return
        joined = np.concatenate(self.pending)
        full = len(joined) - len(joined) % BLOCK
        for at in range(0, full, BLOCK):
            self.moments.add_block(joined[at:at + BLOCK])
        self.pending = [joined[full:]]
        self.waiting = len(joined) - full

    def finish(self) -> dict[str, float]:
        if self.waiting:
            self.moments.add_block(np.concatenate(self.pending))
            self.pending, self.waiting = [], 0
        return self.moments.summary()


def keras_order(counts: dict[str, int]) -> list[tuple[str, int]]:
    """Values by count, most frequent first, ties broken by the value, last first: the
    order Keras's StringLookup.adapt keeps its vocabulary in (sorted by count, then token,
    both descending), so that a vocabulary set from these counts is the one adapt learns."""
    return sorted(counts.items(), key=lambda kv: (kv[1], kv[0].encode("utf-8",
                                                                     "surrogateescape")),
                  reverse=True)


def top_values(counts: dict[str, int], most: int | None) -> list[str]:
    """The `most` most frequent values (all of them for None), sorted: a vocabulary whose
    value i is id i + 1, every other value the unknown id 0."""
    ranked = keras_order(counts)
    if most is not None:
        ranked = ranked[:most]
    return sorted(value for value, _ in ranked)


# Keras's TextVectorization, standardize="lower_and_strip_punctuation": tf.strings.lower
# (ASCII letters only) and this pattern removed (both RE2), then split="whitespace"
# (ASCII whitespace).
STRIP = r'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']'


def words(column):
    """The words of a text column as TextVectorization's defaults make them, flattened."""
    import pyarrow.compute as pc

    lowered = pc.ascii_lower(column)
    return pc.list_flatten(pc.ascii_split_whitespace(
        pc.replace_substring_regex(lowered, pattern=STRIP, replacement="")))


class Learner:
    """Feed it the training rows in file order (`add`), then read `result()`. `texts`:
    text columns whose words are counted too (an adapted TextVectorization's vocabulary)."""

    def __init__(self, numbers: list[str], strings: list[str], texts: list[str] = ()):
        self.numbers = {name: _Blocks() for name in numbers}
        self.strings: dict[str, dict[str, int] | None] = {name: {} for name in strings}
        self.words: dict[str, dict[str, int] | None] = {name: {} for name in texts}
        self.rows = 0

    def add(self, table) -> None:
        """A pyarrow Table or RecordBatch of training rows, next in file order."""
        import pyarrow.compute as pc

        self.rows += table.num_rows
        for name, blocks in self.numbers.items():
            column = table.column(name)
            blocks.add(np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64))
        for name, counts in self.strings.items():
            if counts is None:
                continue
            found = pc.value_counts(table.column(name))
            values = found.field("values").to_pylist()
            for value, count in zip(values, found.field("counts").to_pylist(), strict=True):
                if value is not None:
                    counts[value] = counts.get(value, 0) + count
            if len(counts) > DISTINCT_MOST:
                self.strings[name] = None  # free text or identifiers, not categories
        for name, counts in self.words.items():
            if counts is None:
                continue
            _count(counts, pc.value_counts(words(table.column(name))))
            if len(counts) > DISTINCT_MOST:
                self.words[name] = None  # past what a vocabulary is counted from

    def result(self) -> Learned:
        return Learned(self.rows, {name: blocks.finish() for name, blocks in self.numbers.items()},
                       dict(self.strings), dict(self.words))


def _count(counts: dict[str, int], found) -> None:
    for value, count in zip(found.field("values").to_pylist(),
                            found.field("counts").to_pylist(), strict=True):
        if value is not None:
            counts[value] = counts.get(value, 0) + count


@dataclass
class Learned:
    """What the pass found: `numbers` {column: {count, mean, variance}}, `strings`
    {column: {value: count}, or None past DISTINCT_MOST distinct values}."""

    rows: int
    numbers: dict[str, dict[str, float]]
    strings: dict[str, dict[str, int] | None]
    words: dict[str, dict[str, int] | None] = field(default_factory=dict)

    def id_moments(self, column: str, vocabulary: list[str]) -> dict[str, float]:
        """{count, mean, variance} of the ids a category column becomes through
        `vocabulary` (value i is id i + 1, others 0), from the counts: what the model's
        inputs hold, whichever path read the table."""
        counts = self.strings.get(column) or {}
        index = {value: i + 1 for i, value in enumerate(vocabulary)}
        items = sorted(counts.items())
        total = sum(count for _, count in items)
        if not total:
            return {"count": 0, "mean": 0.0, "variance": 0.0}
        mean = sum(index.get(v, 0) * c for v, c in items) / total
        variance = sum(c * (index.get(v, 0) - mean) ** 2 for v, c in items) / total
        return {"count": total, "mean": mean, "variance": variance}

    def to_json(self) -> dict[str, Any]:
        """stats.json: the numbers, and each text column's KEPT most frequent values in
        Keras's order with their counts, and how many distinct values it has."""
        def kept(found: dict[str, dict[str, int] | None]) -> dict:
            return {name: {"distinct": None, "values": []} if counts is None else
                    {"distinct": len(counts),
                     "values": [list(kv) for kv in keras_order(counts)[:KEPT]]}
                    for name, counts in found.items()}

        out = {"rows": self.rows, "numbers": self.numbers, "strings": kept(self.strings)}
        if self.words:
            out["words"] = kept(self.words)
        return out


def ranked(stats: dict[str, Any], column: str, most: int | None = None,
           kind: str = "strings") -> list[tuple[str, int]] | None:
    """A text column's values (`kind`: words, its words) in Keras's adapt order from
    stats.json, the `most` most frequent (all for None), or None when they were not all
    counted (past DISTINCT_MOST) or are not all kept (past KEPT)."""
    found = stats.get(kind, {}).get(column)
    if not found or found["distinct"] is None:
        return None
    values = found["values"]
    if found["distinct"] > len(values) and (most is None or most > len(values)):
        return None
    return [(value, count) for value, count in values[:most]]
