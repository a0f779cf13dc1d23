"""CSV and Parquet tables: read whole into arrays (cbrun.data.tables), or streamed a window at
a time (cbrun.data.stream) when `stream` says so; either way through pyarrow, with the same
held-out rows, vocabularies and statistics."""

from __future__ import annotations

from pathlib import Path

from cbrun.data.splits import held_out
from cbrun.data.stream import STATS_FILE, STREAM_FILE, inputs_of, load_streamed, targets_of
from cbrun.data.tables import TableProblem, encode_splits
from cbrun.engine.sources import Split, Splits, saved_artifacts
from cbrun.errors import ConfigError, Problem


def load(cfg, config_dir: Path, *, seed: int, run_dir: Path | None = None,
         batch_size: int | None = None) -> Splits:
    try:
        return _load(cfg, config_dir, seed, run_dir, batch_size or cfg.batch_size)
    except TableProblem as exc:
        raise ConfigError([Problem(loc=exc.loc, message=str(exc))]) from None
    except ValueError as exc:  # the files changed since the config was checked
        raise ConfigError([Problem(loc=("data", "path"), message=str(exc))]) from None


def _load(cfg, config_dir: Path, seed: int, run_dir: Path | None, batch_size: int) -> Splits:
    saved = saved_artifacts(run_dir) if run_dir is not None else {}
    recorded = saved.get(STREAM_FILE)
    if recorded is None and "table.json" in saved:
        recorded = {"stream": False}  # a run begun before tables streamed was read whole
    main = cfg.open_table(config_dir, cfg.path)
    from cbrun.data.stream import decide

    decision = decide(cfg, main, recorded)
    if decision.stream:
        shards = {field: main if field == "path" else cfg.open_table(config_dir, value)
                  for field, value in cfg.paths().items()}
        found = load_streamed(cfg, config_dir, seed, batch_size, decision, shards, saved)
        splits = {name: Split(inputs_of(rows), targets_of(rows)) if rows is not None else None
                  for name, rows in found.splits.items()}
        splits["train"].stats = found.stats
        artifacts = {"table.json": found.artifacts, STATS_FILE: found.stats,
                     STREAM_FILE: found.record, **held_out(cfg, found.summary)}
        return Splits(splits["train"], splits["validation"], splits["test"], artifacts,
                      notes=found.notes)
    parts, artifacts, split, stats = encode_splits(cfg, config_dir, seed)
    splits = {name: Split(*part) if part else None for name, part in parts.items()}
    splits["train"].stats = stats
    rows = sum(split["rows"].values()) if split else None
    notes = [decision.line(main, rows)] if decision.asked != "recorded" else []
    return Splits(splits["train"], splits["validation"], splits["test"],
                  {"table.json": artifacts, STATS_FILE: stats, STREAM_FILE: {"stream": False},
                   **held_out(cfg, split)}, notes=notes)
