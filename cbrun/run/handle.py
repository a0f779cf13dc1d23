"""A run directory opened: where it is, its record (run.json), the config it trains with,
and the folder its data paths start in. Training, resume, evaluate, predict and export all
take one of these instead of the four separately."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cbrun.run.record import RunRecord


@dataclass(frozen=True)
class OpenRun:
    run_dir: Path
    record: RunRecord
    config: Any  # RunConfig
    # `cbrun train --fast-dev-run`: every split cut to this many batches (nothing is kept)
    dev_batches: int | None = None

    @property
    def config_dir(self) -> Path:
        """Where the config's relative data paths start: the config file's folder, which
        run.json records (a run of before it was recorded: the run directory)."""
        return Path(self.record.file.config_dir or self.run_dir)
