"""The `data:` section: a discriminated union on `source`, one module per source.

Adding a source means one module here (the keys, checked without TensorFlow) and one in
cbrun/engine/sources/ (the loading)."""

from __future__ import annotations

import operator
from functools import reduce
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from cbrun.config.data.common import DataSource
from cbrun.config.data.csv import CsvData
from cbrun.config.data.digits import DigitsData
from cbrun.config.data.images import ImagesData
from cbrun.config.data.kerasds import KerasData
from cbrun.config.data.npz import NpzData
from cbrun.config.data.parquet import ParquetData
from cbrun.config.data.python import PythonData

SOURCES: dict[str, type[DataSource]] = {
    "digits": DigitsData, "npz": NpzData, "csv": CsvData, "parquet": ParquetData,
    "images": ImagesData, "keras": KerasData, "python": PythonData,
}

DataConfig = Annotated[reduce(operator.or_, SOURCES.values()), Field(discriminator="source")]


def shape_problems(config: Any, folder: Path) -> list[tuple[tuple[Any, ...], str]]:
    """A single-input stack whose input_shape does not match the samples, found from the
    data's headers or settings, before TensorFlow. Other model kinds are checked once
    built."""
    expected = getattr(config.model, "input_shape", None)
    shapes = config.data.sample_shapes(folder)
    if expected is None or not shapes or list(shapes) != [None]:
        return []
    given = shapes[None]
    if list(given) == list(expected):
        return []
    return [(("model", "input_shape"), (f"the training samples have shape {list(given)}, "
                                        f"but the model expects input_shape {list(expected)}"))]


def default_source(value: Any) -> Any:
    """`data:` without `source:` meant the embedded digits before sources existed."""
    if isinstance(value, dict) and "source" not in value:
        return {"source": "digits", **value}
    return value


# What cbrun 0.1 wrote into a digits run's resolved.yaml: its one data section's npz keys,
# at their defaults. They mean nothing for digits, and today's digits source takes none.
_DIGITS_01_DEFAULTS = {"path": None, "x_key": "x", "y_key": "y", "validation_path": None}


def resolved_by_older(value: Any) -> Any:
    """A run's resolved `data:` as an older cbrun wrote it (every default of that version
    filled in), read today: the defaults that no longer exist are dropped, and the
    held-out rows are those it cut, the last ones (`split: tail`: before `split` existed,
    there was no other way)."""
    if not isinstance(value, dict):
        return value
    if value.get("source") == "digits":
        value = {key: item for key, item in value.items()
                 if not (key in _DIGITS_01_DEFAULTS and item == _DIGITS_01_DEFAULTS[key])}
    if "split" not in value:
        value = {**value, "split": "tail"}
    return value


__all__ = ["SOURCES", "DataConfig", "DataSource", "DigitsData", "default_source",
           "resolved_by_older"]
