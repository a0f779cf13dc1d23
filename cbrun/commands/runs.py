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
from cbrun.run.logs import LogError, best_epoch, default_monitor, infer_mode, read_log
from cbrun.run.runinfo import (
    RunInfo,
    find_runs,
    nested_run_folders,
    read_run_info,
    sweep_dirs,
    sweep_trials,
)
from cbrun.sweep.directory import TRIALS_DIR

# Columns left out, in this order, until the table fits the terminal: the id is what users
# copy into `resume` and `plot`, so it is never cut; `--json` still has every field.
DROPPABLE = ("started", "duration", "test", "baseline")
GAP = 2  # spaces between columns (rich's padding of 1 on each side)

STATUS_STYLES = {
    "running": "bold yellow",
    "completed": "green",
    "stopped_early": "cyan",
    "pruned": "yellow",
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
    duration_s: float | None = None
    sweep: str | None = None  # the sweep this run is a trial of (`runs --trials`)

    @property
    def trial(self) -> str:
        """`digits-search #4`; `-` for a run that is no trial."""
        if self.sweep is None:
            return "-"
        number = self.info.trial
        return f"{self.sweep} #{number}" if number is not None else self.sweep

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
            "duration_s": self.duration_s,
            "created": info.created.isoformat() if info.created else None,
            "finished": info.finished.isoformat() if info.finished else None,
            "problem": info.problem,
            "test": dict(info.test),
            "baseline": dict(info.baseline),
            "no_better_than_baseline": info.verdict is not None,
            "sweep": ({"name": self.sweep, "trial": info.trial}
                      if self.sweep is not None else None),
            "overfit_batches": info.overfit_batches,
        }


@click.command("runs")
@click.argument("directory", required=False, default="runs",
                type=click.Path(file_okay=False, path_type=Path))
@click.option("--trials", is_flag=True,
              help="List the trials of the sweeps in DIRECTORY too (runs/sweeps/<name>/"
                   "trials/), each marked with its sweep and trial number.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, for scripts.")
def runs(directory: Path, trials: bool, as_json: bool) -> None:
    """List the runs in DIRECTORY (default: runs/): id, status, epochs done, best monitored
    value and its epoch, duration, start time. With --trials, the trials of the sweeps
    there too (`cbrun sweep` keeps them under runs/sweeps/<name>/trials/)."""
    if not directory.is_dir():
        raise UsageError(f"no such directory: {directory} (runs are written to runs/ by "
                         "`cbrun train CONFIG`)")
    rows = [run_row(path) for path in find_runs(directory)]
    sweeps = {sweep: sweep_trials(sweep) for sweep in sweep_dirs(directory)}
    sweeps = {sweep: found for sweep, found in sweeps.items() if found}
    if trials:
        rows += [run_row(path, sweep.name) for sweep, found in sweeps.items()
                 for path in found]
    # Ids start with their UTC start time, so sorting by id lists runs in order.
    rows.sort(key=lambda row: row.info.id)
    # A sweep's trials/ folder is named by the sweep note below, not as a folder of runs.
    nested = [folder for folder in nested_run_folders(directory)
              if folder.parent not in sweeps or folder.name != TRIALS_DIR]
    if as_json:
        click.echo(json.dumps([row.to_json() for row in rows], indent=2))
    elif rows:
        # Through a pipe rich would assume 80 columns; let lines be long there.
        width = Console().width if sys.stdout.isatty() else 200
        table = runs_table(rows, width)
        # Wider than the terminal only when even the id and status cannot fit: the
        # terminal then wraps lines, but every id stays whole.
        Console(width=max(width, min_table_width(table))).print(table)
    else:
        click.echo(f"no runs in {directory}")
    for row in rows:
        if row.info.problem:
            click.echo(f"warning: {row.info.problem}", err=True)
    if sweeps and not trials:
        count = sum(len(found) for found in sweeps.values())
        names = ", ".join(f"{sweep} ({len(found)})" for sweep, found in sweeps.items())
        click.echo(f"note: not listed: {count} sweep trial{'s' * (count != 1)} in {names}; "
                   f"--trials lists them", err=True)
    if nested:
        # On stderr, like the warnings: `--json` output stays one JSON document.
        names = ", ".join(str(folder) for folder in nested)
        click.echo(f"note: not listed: {names} (folders of runs; name one to list it)",
                   err=True)


def run_row(path: Path, sweep: str | None = None) -> RunRow:
    """`sweep`: the name of the sweep whose trials/ folder holds the run, for a run.json
    that does not say (an unreadable one); a trial's own run.json names its sweep."""
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
        duration_s=info.elapsed_s(),
        sweep=info.sweep or sweep,
    )


def runs_table(rows: list[RunRow], width: int | None = None) -> Table:
    """The listing; with `width`, columns from `DROPPABLE` are left out (and named in the
    caption) until it fits, then `best` may wrap. The id is never cut or wrapped."""
    cells = [_cells(row) for row in rows]
    shown = ["id", "status", "epochs", "best", "at epoch", "duration", "started"]
    if any(row.sweep is not None for row in rows):
        shown.insert(1, "trial")
    if any(row.info.baseline for row in rows):
        shown.insert(4, "baseline")
    if any(row.info.test for row in rows):
        shown.insert(shown.index("at epoch") + 1, "test")
    dropped: list[str] = []
    for name in (n for n in DROPPABLE if n in shown):
        if width is None or _natural_width(shown, cells) <= width:
            break
        shown.remove(name)
        dropped.append(name)
    notes = []
    if "baseline" in shown and any(row.info.verdict for row in rows):
        notes.append("baseline: the monitored value of always predicting the training "
                     "mean or class shares; ! the run is no better")
    if any(row.info.overfit_batches for row in rows):
        notes.append("overfit N: a debug run trained and validated on the same N batches "
                     "(--overfit-batches); its scores say nothing of the model")
    if dropped:
        notes.append(f"({' and '.join(dropped)} left out to fit {width} columns; --json has "
                     "all)")
    caption = "\n".join(notes) or None
    table = Table(box=None, header_style="bold", pad_edge=False, caption=caption,
                  caption_justify="left", caption_style="dim")
    for name in shown:
        fits = width is None or _natural_width(shown, cells) <= width
        table.add_column(
            name,
            justify="right" if name in ("epochs", "at epoch", "duration") else "left",
            # `best` ("val_loss 0.3615") wraps at its space when nothing else can give.
            no_wrap=fits or name != "best",
            min_width=_width(name, cells) if name == "id" else None,
        )
    for row_cells, row in zip(cells, rows, strict=True):
        status = row.info.shown_status
        values = [Text(row_cells["status"], style=STATUS_STYLES.get(status, ""))
                  if name == "status" else row_cells[name] for name in shown]
        table.add_row(*values)
    return table


def min_table_width(table: Table) -> int:
    """The narrowest the table can be drawn without cutting a cell: no-wrap columns at
    their widest cell, the others at their longest word."""
    total = GAP * (len(table.columns) - 1)
    for column in table.columns:
        texts = [column.header, *column.cells]
        texts = [t.plain if isinstance(t, Text) else str(t) for t in texts]
        if column.no_wrap:
            total += max(len(t) for t in texts)
        else:
            total += max(len(word) for t in texts for word in t.split() or [""])
    return total


def _cells(row: RunRow) -> dict[str, str]:
    info = row.info
    return {
        "id": info.id,
        "trial": row.trial,
        # Next to the status, so that a debug run's perfect score is never read as a model's.
        "status": info.shown_status + (f" (overfit {info.overfit_batches})"
                                       if info.overfit_batches else ""),
        "epochs": _epochs(row.epochs_done, info.epochs_planned),
        "best": _best(row.monitor, row.best_value),
        "at epoch": "-" if row.best_epoch is None else str(row.best_epoch),
        "test": _test(row),
        "baseline": _baseline(row),
        "duration": format_duration(row.duration_s),
        "started": format_started(info.created),
    }


def _width(name: str, cells: list[dict[str, str]]) -> int:
    return max([len(name)] + [len(c[name]) for c in cells])


def _natural_width(shown: list[str], cells: list[dict[str, str]]) -> int:
    return sum(_width(name, cells) for name in shown) + GAP * (len(shown) - 1)


def _epochs(done: int | None, planned: int | None) -> str:
    if done is None:
        return "-"
    return f"{done}/{planned}" if planned else str(done)


def _test(row: RunRow) -> str:
    """The test value of the monitored quantity (val_loss -> test_loss), else the first."""
    values = dict(row.info.test)
    if not values:
        return "-"
    wanted = "test_" + (row.monitor or "loss").removeprefix("val_")
    name = wanted if wanted in values else next(iter(values))
    return f"{name} {values[name]:.4g}"


def _baseline(row: RunRow) -> str:
    """The trivial model's value of the monitored quantity; `!` when the run's best is no
    better (run.json's baseline.verdict)."""
    values = dict(row.info.baseline)
    if row.monitor not in values:
        return "-"
    return f"{values[row.monitor]:.4g}{' !' if row.info.verdict else ''}"


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

