"""Which rows go to training, validation and test: drawn once from the seed, before anything
is learned from the data, and the same every time the run's data is read again (resume,
evaluate, predict), because the draw is a pure function of (seed, the labels, the sizes).

Three ways (`data.split`):
- `stratified`: every class keeps its share in every split. The rows are put in order of
  (class, a random key drawn from the seed), and the held-out rows are taken evenly spaced
  along that order, so each class gives its share (to within one row), and the totals are
  exactly those of `tail`.
- `random`: a permutation drawn from the seed; the first rows of it are held out.
- `tail`: the last rows, as Keras cuts `validation_split` (test first, from the very end,
  then validation from the end of what is left). It depends on the file's order: a file
  sorted by its label holds out one class.
`auto` (the default) is `stratified` for a target of classes and `random` otherwise.

Each split's indices are sorted: `shuffle: false` keeps the file's order inside a split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

METHODS = ("auto", "stratified", "random", "tail")
SPLIT_FILE = "split.json"  # in the run's data/: how the rows were split
# A stream of the seed of its own, so that drawing the split does not move the draws of
# the data order or of the weights.
_STREAM = 0x5EED5
# data.fraction's draw: a stream of its own, and one per split, so that the share a split
# keeps does not depend on the others' sizes.
_SHARE_STREAM = 0x5A4E
# Labels with more distinct values than this (and not text) are numbers, not classes.
MAX_CLASSES = 50


@dataclass(frozen=True)
class Cut:
    """Sorted row indices of each split; validation and test are empty when not asked for."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    method: str  # what was drawn: stratified, random or tail (never auto)
    sorted_rows: bool = False  # the rows were sorted by their label

    def summary(self) -> dict:
        """What `data/split.json` records in the run directory."""
        return {"method": self.method, "sorted_by_label": self.sorted_rows,
                "rows": {"train": len(self.train), "validation": len(self.validation),
                         "test": len(self.test)}}


def held_out_sizes(n: int, validation: float, test: float) -> tuple[int, int]:
    """(validation rows, test rows) of n: the test part is `test` of all rows, the
    validation part `validation` of what is left (Keras's arithmetic, so that every
    method holds out as many rows as `tail` always has)."""
    kept = int(n * (1.0 - test)) if test else n
    cut = int(kept * (1.0 - validation)) if validation else kept
    return kept - cut, n - kept


def class_codes(labels, asked: bool = False) -> np.ndarray | None:
    """Integer codes of labels that are classes (text, true/false, or integers with few
    distinct values; any integers when stratifying was `asked` for), or None for numbers,
    several columns, or nothing."""
    found = classes_of(labels, asked)
    return None if found is None else found[1]


def classes_of(labels, asked: bool = False) -> tuple[np.ndarray, np.ndarray] | None:
    """(the classes, sorted; each label's index among them) where the labels are classes
    (see class_codes), else None."""
    if labels is None:
        return None
    values = np.asarray(labels)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1 or values.dtype.kind not in "iubUSO" or len(values) == 0:
        return None
    text = _as_text(values) if values.dtype.kind == "O" else None
    if text is not None:
        found, codes, _ = _text_uniques(text)
    elif values.dtype.kind == "O" and not all(isinstance(v, str) for v in values):
        return None
    else:
        found, codes, _ = uniques(values)
    if values.dtype.kind in "iu" and len(found) > MAX_CLASSES and not asked:
        return None
    return found, codes


def uniques(values) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sorted distinct values, each value's index among them, their counts): np.unique's
    answer. Text in an object array (how pyarrow hands a string column over) is counted by
    pyarrow's hash table instead: np.unique sorts a million Python strings in seconds."""
    values = np.asarray(values)
    text = _as_text(values) if values.dtype.kind == "O" else None
    if text is not None:
        return _text_uniques(text)
    found, codes, counts = np.unique(values, return_inverse=True, return_counts=True)
    return found, codes.reshape(-1).astype(np.int64), counts


def _as_text(values: np.ndarray):
    """The pyarrow array of an object array that holds str values only (no None), else
    None. pyarrow's type inference is the isinstance check, done in C."""
    import pyarrow as pa

    try:
        array = pa.array(values)
    except (pa.ArrowException, TypeError, ValueError, UnicodeError):  # mixed; lone surrogates
        return None
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)) or \
            array.null_count:
        return None
    return array


def _text_uniques(array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uniques() of a pyarrow string array; UTF-8 bytes sort as code points do, so the
    order is Python's."""
    import pyarrow.compute as pc

    encoded = array.dictionary_encode()
    order = pc.array_sort_indices(encoded.dictionary).to_numpy()
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    codes = rank[encoded.indices.to_numpy()]
    found = np.array(encoded.dictionary.take(order).to_pylist(), dtype=object)
    return found, codes, np.bincount(codes, minlength=len(found))


def is_sorted_by(labels) -> bool:
    """Rows in blocks of one class each (every class appears in one run of rows), as a
    file sorted by its label is; at least two classes and ten rows a class."""
    return _blocks(class_codes(labels))


def _blocks(codes: np.ndarray | None) -> bool:
    if codes is None or len(codes) < 20:
        return False
    classes = len(np.unique(codes))
    runs = 1 + int(np.count_nonzero(codes[1:] != codes[:-1]))
    return classes >= 2 and runs == classes and len(codes) >= 10 * classes


def resolve(method: str, codes: np.ndarray | None) -> str:
    if method == "auto":
        return "stratified" if codes is not None else "random"
    return method


def draw(n: int, validation: float, test: float, method: str, seed: int,
         labels=None) -> Cut:
    """The split of n rows. `labels`: the rows' targets (one per row), used to stratify.
    (A streamed table's rows are split row by row instead: cbrun/data/rowsplit.py.)"""
    n_val, n_test = held_out_sizes(n, validation, test)
    plain = class_codes(labels)  # once: each call counts every label
    codes = None
    if method in ("auto", "stratified"):
        codes = plain if plain is not None or method == "auto" else class_codes(labels, True)
    method = resolve(method, codes)
    sorted_rows = labels is not None and _blocks(plain)
    if method == "tail":
        cut, kept = n - n_test - n_val, n - n_test
        rows = np.arange(n, dtype=np.int64)
        return Cut(rows[:cut], rows[cut:kept], rows[kept:], "tail", sorted_rows)
    rng = np.random.default_rng([seed, _STREAM])
    if method == "random" or codes is None:
        order = rng.permutation(n)
        test_rows, val_rows = order[:n_test], order[n_test:n_test + n_val]
        method = "random"
    else:
        keys = rng.random(n)
        order = np.lexsort((keys, codes))
        test_rows, rest = _evenly(order, n_test, rng)
        val_rows, _ = _evenly(rest, n_val, rng)
    held = np.zeros(n, dtype=bool)
    held[test_rows] = True
    held[val_rows] = True
    return Cut(np.flatnonzero(~held), np.sort(val_rows), np.sort(test_rows), method,
               sorted_rows)


def share(n: int, fraction: float, seed: int, split: int, labels=None) -> np.ndarray:
    """Sorted rows of a seeded `fraction` of n rows, at least one (`data.fraction`); every
    class keeps its share when the labels are classes. `split`: which split (0, 1, 2)."""
    if fraction >= 1.0 or n == 0:
        return np.arange(n, dtype=np.int64)
    k = max(1, round(n * fraction))
    rng = np.random.default_rng([seed, _SHARE_STREAM, split])
    codes = class_codes(labels)
    if codes is None or len(codes) != n:
        return np.sort(rng.permutation(n)[:k])
    picked, _ = _evenly(np.lexsort((rng.random(n), codes)), k, rng)
    return np.sort(picked)


def _evenly(order: np.ndarray, k: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """(k positions of `order` spaced evenly from a random start, the rest in order)."""
    if k == 0:
        return order[:0], order
    step = len(order) / k
    picks = (np.floor(rng.random() * step + step * np.arange(k))).astype(np.int64)
    mask = np.zeros(len(order), dtype=bool)
    mask[picks] = True
    return order[mask], order[~mask]


def held_out(cfg, summary: dict) -> dict[str, dict]:
    """{SPLIT_FILE: summary} when the source held rows out (validation_split or
    test_split), else nothing: the artifact that records how."""
    return {SPLIT_FILE: summary} if cfg.validation_split or cfg.test_split else {}


def take(value, rows: np.ndarray):
    """Rows of an array, or of each array of a {name: array} mapping: a view where the rows
    are a run of neighbours (a `tail` split), a copy otherwise."""
    if len(rows) and rows[-1] - rows[0] + 1 == len(rows):
        rows = slice(int(rows[0]), int(rows[-1]) + 1)
    if isinstance(value, dict):
        return {k: v[rows] for k, v in value.items()}
    return value[rows]
