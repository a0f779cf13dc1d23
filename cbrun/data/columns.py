"""What each column of a table holds: its kind, missing values, distinct values, range.

All of it from pyarrow's compute kernels, a column at a time, so a million rows take a
fraction of a second."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

# A text column is free text (sentences) rather than a category when most of its values
# differ and they hold this many words on average.
FREE_TEXT_WORDS = 3
_SAMPLE = 10_000  # values read to count words


def kind_of(column, distinct: int, text: bool = False) -> str:
    """number, integer, bool, category, free text, text (kept raw: the config's `text:`),
    decimal, date, time, duration, bytes, empty, or the pyarrow type."""
    import pyarrow as pa

    kind = column.type
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if column.null_count == len(column):
        return "empty"
    if pa.types.is_boolean(kind):
        return "bool"
    if pa.types.is_integer(kind):
        return "integer"
    if pa.types.is_floating(kind):
        return "number"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        if text:
            return "text"
        return "free text" if _sentences(column, distinct) else "category"
    for test, name in ((pa.types.is_decimal, "decimal"), (pa.types.is_date, "date"),
                       (pa.types.is_timestamp, "date"),
                       (pa.types.is_time, "time"), (pa.types.is_duration, "duration"),
                       (pa.types.is_binary, "bytes"), (pa.types.is_large_binary, "bytes")):
        if test(kind):
            return name
    return str(kind)


def _sentences(column, distinct: int) -> bool:
    import pyarrow.compute as pc

    present = len(column) - column.null_count
    if present < 10 or distinct <= 0.5 * present:
        return False
    sample = column.drop_null().slice(0, _SAMPLE)
    if hasattr(sample, "combine_chunks"):
        sample = sample.combine_chunks()
    words = pc.list_value_length(pc.utf8_split_whitespace(sample))
    return float(pc.mean(words).as_py() or 0) >= FREE_TEXT_WORDS


def profile(table, name: str, text: bool = False, key=None) -> dict[str, Any]:
    """{name, type, kind, missing, nan, distinct, constant, min, max, example} of one
    column; `text`: the config keeps it as raw text; `key`: its rowkeys.Key, which counts
    the distinct values faster than pyarrow's hash table."""
    import pyarrow as pa
    import pyarrow.compute as pc

    column = table.column(name)
    kind_type = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
    missing = column.null_count
    if key is not None:
        distinct = key.count_distinct()
    else:
        try:
            distinct = pc.count_distinct(column).as_py()
        except pa.ArrowNotImplementedError:
            distinct = None
    nan = 0
    if pa.types.is_floating(kind_type):
        nan = int(pc.sum(pc.is_nan(column)).as_py() or 0)
        if nan and distinct:
            distinct -= 1  # NaN is no value
    kind = kind_of(column, distinct or 0, text)
    low = high = None
    if kind in ("number", "integer", "decimal", "date", "time", "duration", "bool"):
        try:
            found = pc.min_max(column).as_py()
            low, high = plain(found["min"]), plain(found["max"])
        except pa.ArrowNotImplementedError:
            pass
    example = None
    if distinct and kind in ("category", "free text", "text", "bytes", "date"):
        example = plain(column.drop_null()[0].as_py())
    return {"name": name, "type": str(column.type), "kind": kind, "missing": missing,
            "nan": nan, "distinct": distinct,
            "constant": distinct == 1 and not missing and len(column) > 1,
            "min": low, "max": high, "example": example}


def plain(value: Any) -> Any:
    """A value as JSON holds it: numbers stay numbers (NaN and infinity as text), dates,
    decimals and bytes become text."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, np.generic):
        return plain(value.item())
    if isinstance(value, bytes):
        return value[:40].hex()
    return str(value)


def missing_rows(table, name: str, nan: bool = False, limit: int = 5) -> np.ndarray:
    """Indices of the first `limit` rows where the column is missing (null), or NaN."""
    import pyarrow.compute as pc

    column = table.column(name)
    mask = pc.fill_null(pc.is_nan(column), False) if nan else column.is_null()
    return np.flatnonzero(mask.to_numpy(zero_copy_only=False))[:limit]
