"""CSV and Parquet tables, through cbrun.data.tables (pyarrow, no TensorFlow)."""

from __future__ import annotations

from pathlib import Path

from cbrun.data.splits import held_out
from cbrun.data.tables import TableProblem, encode_splits
from cbrun.engine.sources import Split, Splits
from cbrun.errors import ConfigError, Problem


def load(cfg, config_dir: Path, *, seed: int) -> Splits:
    try:
        parts, artifacts, split = encode_splits(cfg, config_dir, seed)
    except TableProblem as exc:
        raise ConfigError([Problem(loc=exc.loc, message=str(exc))]) from None
    splits = {name: Split(*part) if part else None for name, part in parts.items()}
    return Splits(splits["train"], splits["validation"], splits["test"],
                  {"table.json": artifacts, **held_out(cfg, split)})
