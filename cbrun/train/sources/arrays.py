"""Splitting arrays (or {name: array} mappings) held in memory."""

from __future__ import annotations

from typing import Any

from cbrun.config.data.common import tail_cuts
from cbrun.errors import ConfigError, Problem
from cbrun.train.sources import Split, Splits


def take(value: Any, start: int, stop: int | None) -> Any:
    if isinstance(value, dict):
        return {k: v[start:stop] for k, v in value.items()}
    return value[start:stop]


def count(value: Any) -> int:
    return len(next(iter(value.values()))) if isinstance(value, dict) else len(value)


def split_arrays(cfg, x: Any, y: Any, validation: Split | None = None,
                 test: Split | None = None, artifacts: dict | None = None) -> Splits:
    """Validation and test parts cut from the end of (x, y), as configured, unless given."""
    n = count(x)
    cut, kept = tail_cuts(n, cfg.validation_split, cfg.test_split)
    if cfg.test_split:
        test = Split(take(x, kept, None), take(y, kept, None))
    if cfg.validation_split:
        validation = Split(take(x, cut, kept), take(y, cut, kept))
    if cut == 0:
        raise ConfigError([Problem(loc=("data",), message="no training samples are left")])
    return Splits(Split(take(x, 0, cut), take(y, 0, cut)), validation, test,
                  artifacts or {})
