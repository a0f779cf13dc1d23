"""The table printed when a run ends (lower floor: rich only, no TensorFlow)."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from cbrun.run.record import RunFile
from cbrun.run.rundir import LOG_FILE


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def summary_table(record: RunFile, run_dir: Path) -> Table:
    table = Table(title=f"run {record.id}", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row("status", str(record.status))
    table.add_row("epochs", f"{record.epochs_done} of {record.epochs_planned}")
    if record.best:
        name = record.monitor.name if record.monitor else ""
        table.add_row(f"best {name}",
                      f"{_fmt(record.best.value)} at epoch {record.best.epoch}")
    for name, value in (record.test or {}).items():
        table.add_row(name, f"{_fmt(value)}  (test split, final weights)")
    if record.baseline:
        shown = ", ".join(f"{k} {_fmt(v)}" for k, v in record.baseline.metrics.items())
        table.add_row("baseline", f"{shown}  (always predicting {record.baseline.predicts})")
        verdict = record.baseline.verdict(record.monitor, record.best)
        if verdict:
            table.add_row("", f"[bold yellow]{verdict}[/]")
    if record.stopped_early_at:
        table.add_row("stopped early", f"at epoch {record.stopped_early_at}")
    if record.error:
        table.add_row("note", record.error)
    table.add_row("run directory", str(run_dir))
    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").glob("*")) \
        if (run_dir / "checkpoints").is_dir() else []
    if checkpoints:
        table.add_row("checkpoints", f"{len(checkpoints)} in checkpoints/ (newest "
                                     f"{checkpoints[-1]})")
    if (run_dir / "model.keras").exists():
        table.add_row("final model", "model.keras")
    table.add_row("log", f"{LOG_FILE}  (cbrun plot {run_dir / LOG_FILE})")
    if (run_dir / "tensorboard").is_dir():
        table.add_row("tensorboard", f"tensorboard --logdir {run_dir / 'tensorboard'}")
    return table
