"""`cbrun runs`: list the runs in a folder, with their status and best value."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from cbrun.errors import UsageError
from cbrun.logs import LogError, best_epoch, default_monitor, infer_mode, read_log
from cbrun.runinfo import RunInfo, find_runs, read_run_info

STATUS_STYLES = {
    "running": "bold yellow",
    "completed": "green",
    "stopped_early": "cyan",
    "interrupted": "magenta",
    "failed": "bold red",
    "unreadable": "red",
    "unknown": "dim",
}


@dataclass(frozen=True)
class RunRow:
    """One line of the listing: run.json, with what it lacks filled in from log.csv."""

    info: RunInfo
    epochs_done: int | None
    monitor: str | None
    best_epoch: int | None
    best_value: float | None

    def to_json(self) -> dict[str, Any]:
        info = self.info
        return {
            "id": info.id,
            "path": str(info.path),
            "status": info.shown_status,
            "recorded_status": info.status,
            "epochs_done": self.epochs_done,
            "epochs_planned": info.epochs_planned,
            "monitor": self.monitor,
            "best_value": self.best_value,
            "best_epoch": self.best_epoch,
            "stopped_early_at": info.stopped_early_at,
            "resumed_at": list(info.resume_epochs),
            "duration_s": info.duration_s,
            "created": info.created.isoformat() if info.created else None,
            "finished": info.finished.isoformat() if info.finished else None,
            "problem": info.problem,
        }


@click.command("runs")
@click.argument("directory", required=False, default="runs",
                type=click.Path(file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, for scripts.")
def runs(directory: Path, as_json: bool) -> None:
    """List the runs in DIRECTORY (default: runs/): id, status, epochs done, best monitored
    value and its epoch, duration, start time."""
    if not directory.is_dir():
        raise UsageError(f"no such directory: {directory} (runs are written to runs/ by "
                         "`cbrun train CONFIG`)")
    rows = [run_row(path) for path in find_runs(directory)]
    # Ids start with their UTC start time, so sorting by id lists runs in order.
    rows.sort(key=lambda row: row.info.id)
    if as_json:
        click.echo(json.dumps([row.to_json() for row in rows], indent=2))
        return
    if not rows:
        click.echo(f"no runs in {directory}")
        return
    # Through a pipe rich would assume 80 columns and wrap the ids; let lines be long.
    console = Console(width=None if sys.stdout.isatty() else 200)
    console.print(runs_table(rows))
    for row in rows:
        if row.info.problem:
            click.echo(f"warning: {row.info.problem}", err=True)


def run_row(path: Path) -> RunRow:
    info = read_run_info(path)
    done, monitor = info.epochs_done, info.monitor
    best = (info.best_epoch, info.best_value) if info.best_epoch is not None else None
    if done is None or best is None:
        # run.json lacks them (unreadable, foreign, or no epoch finished): ask the log.
        try:
            log = read_log(info.log_path)
        except (LogError, UsageError):
            log = None
        if log is not None:
            done = done if done is not None else len(log)
            monitor = monitor or default_monitor(log.columns)
            if best is None and monitor:
                best = best_epoch(log, monitor, infer_mode(monitor, info.mode))
    return RunRow(
        info=info,
        epochs_done=done,
        monitor=monitor,
        best_epoch=best[0] if best else None,
        best_value=best[1] if best else None,
    )


def runs_table(rows: list[RunRow]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("id", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("epochs", justify="right", no_wrap=True)
    table.add_column("best", no_wrap=True)
    table.add_column("at epoch", justify="right", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    table.add_column("started", no_wrap=True)
    for row in rows:
        info = row.info
        status = info.shown_status
        table.add_row(
            info.id,
            Text(status, style=STATUS_STYLES.get(status, "")),
            _epochs(row.epochs_done, info.epochs_planned),
            _best(row.monitor, row.best_value),
            "-" if row.best_epoch is None else str(row.best_epoch),
            format_duration(info.duration_s),
            format_started(info.created),
        )
    return table


def _epochs(done: int | None, planned: int | None) -> str:
    if done is None:
        return "-"
    return f"{done}/{planned}" if planned else str(done)


def _best(monitor: str | None, value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{monitor} {value:.4g}" if monitor else f"{value:.4g}"


def format_duration(seconds: float | None) -> str:
    """48.2 -> '48.2s', 192 -> '3m 12s', 3720 -> '1h 02m'."""
    if seconds is None or seconds < 0:
        return "-"
    if seconds < 59.95:  # what would not print as 60.0s
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def format_started(created: datetime | None) -> str:
    if created is None:
        return "-"
    # run.json stores UTC; people read their own clock.
    local = created.astimezone() if created.tzinfo else created
    return local.strftime("%Y-%m-%d %H:%M")

