"""Splitting arrays (or {name: array} mappings) held in memory."""

from __future__ import annotations

from typing import Any

from cbrun.data.splits import draw, held_out, take
from cbrun.engine.sources import Split, Splits
from cbrun.errors import ConfigError, Problem


def count(value: Any) -> int:
    return len(next(iter(value.values()))) if isinstance(value, dict) else len(value)


def split_arrays(cfg, x: Any, y: Any, validation: Split | None = None,
                 test: Split | None = None, artifacts: dict | None = None, *,
                 seed: int) -> Splits:
    """Validation and test parts drawn from (x, y) as `cfg.split` says (cbrun/data/
    splits.py), unless given."""
    n = count(x)
    cut = draw(n, cfg.validation_split, cfg.test_split, cfg.split, seed,
               labels=None if isinstance(y, dict) else y)
    if cfg.test_split:
        test = Split(take(x, cut.test), take(y, cut.test))
    if cfg.validation_split:
        validation = Split(take(x, cut.validation), take(y, cut.validation))
    if len(cut.train) == 0:
        raise ConfigError([Problem(loc=("data",), message="no training samples are left")])
    return Splits(Split(take(x, cut.train), take(y, cut.train)), validation, test,
                  {**(artifacts or {}), **held_out(cfg, cut.summary())})
