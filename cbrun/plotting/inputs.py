"""What to draw: runs (a log plus what run.json says) and the metric families to show."""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from cbrun.errors import UsageError
from cbrun.run.logs import (
    Family,
    LogError,
    NoRowsError,
    NotALogError,
    TrainingLog,
    best_epoch,
    default_monitor,
    infer_mode,
    is_learning_rate,
    metric_families,
    read_log,
    resolve_log_path,
)
from cbrun.run.rundir import LOG_FILE, RUN_FILE
from cbrun.run.runinfo import NO_RUN_FILE, UNREADABLE, RunInfo, read_run_info

Warn = Callable[[str], None]

# Beyond these magnitudes a value is a diverged metric or an underflow that no axis can
# hold: the span or the margins around 1.7e308 overflow to inf, and a log axis ends near
# 1e-308. Drawn, the first is a gap (like inf) and the second is 0.
LARGEST_DRAWN = 1e300
SMALLEST_DRAWN = 1e-300

# What `cbrun plot` writes when no -o is given: `compare.png` for several runs, and the
# CSV's name with .png for one. A glob such as `runs/*` picks them up again.
COMPARE_NAME = "compare.png"
IMAGE_SUFFIX = ".png"


@dataclass(frozen=True)
class Marks:
    """Epochs worth pointing at, all 1-based.

    best: (epoch, value) of the monitored metric's best epoch, or None.
    early_stop: the epoch where EarlyStopping ended the run, or None.
    resumes: the first epoch of each resumed segment.
    """

    monitor: str | None = None
    mode: str = "min"
    best: tuple[int, float] | None = None
    early_stop: int | None = None
    resumes: tuple[int, ...] = ()


@dataclass(frozen=True)
class PlotRun:
    label: str
    log: TrainingLog
    info: RunInfo | None
    marks: Marks


def _ignore(message: str) -> None:
    pass


def run_info_for(csv_path: Path) -> RunInfo | None:
    """The run.json beside a CSV, None when there is none (a foreign CSV)."""
    if not (csv_path.parent / RUN_FILE).exists():
        return None
    return read_run_info(csv_path.parent)


def load_run(path: Path, warn: Warn = _ignore) -> PlotRun:
    csv_path = resolve_log_path(Path(path))
    info = run_info_for(csv_path)
    if info is not None and info.status == UNREADABLE:
        warn(f"{info.problem}; plotting {csv_path} without its run's marks")
    log = drawable(read_log(csv_path))
    if log.x_name == "row":
        warn(f"{csv_path} has no 'epoch' or 'step' column: numbering its rows from 1")
    return PlotRun(label=_label(csv_path, info), log=log, info=info, marks=marks_for(log, info))


def drawable(log: TrainingLog) -> TrainingLog:
    """The log with values no axis can hold made into gaps (huge) or 0 (subnormal)."""
    def fit(value: float) -> float:
        if abs(value) > LARGEST_DRAWN:
            return math.nan
        return 0.0 if abs(value) < SMALLEST_DRAWN else value

    values = {name: tuple(fit(v) for v in column) for name, column in log.values.items()}
    return replace(log, values=values)


def load_runs(paths: Sequence[Path], warn: Warn = _ignore) -> list[PlotRun]:
    """Every run that can be drawn. Alone, a path that cannot be drawn is an error. In a
    comparison (often a glob like `runs/*`) it is left out with a one-line warning, and
    the images cbrun itself wrote there are left out silently; a path that does not exist
    is still an error, since it is a typo."""
    if len(paths) == 1:
        return [load_run(paths[0], warn)]
    runs: list[PlotRun] = []
    for path in map(Path, paths):
        if written_by_cbrun(path):
            continue
        try:
            runs.append(load_run(path, warn))
        except NotALogError as exc:
            warn(f"skipped {path}: not a CSV log ({exc.reason})")
        except (LogError, UsageError) as exc:
            if not path.exists():
                raise
            warn(f"left out of the comparison: {exc}")
    if not runs:
        raise NoRowsError(f"none of the {len(paths)} paths has anything to plot")
    return _unique_labels(runs)


def written_by_cbrun(path: Path) -> bool:
    """Whether `path` is an image that `cbrun plot` wrote by default: compare.png, or the
    .png beside a CSV of the same name (log.png beside log.csv)."""
    if path.suffix.lower() != IMAGE_SUFFIX or not path.is_file():
        return False
    return path.name == COMPARE_NAME or path.with_suffix(".csv").is_file()


def is_live(run: PlotRun) -> bool:
    """Whether a run may still append rows (`RunInfo.may_grow`); a CSV without a run.json
    beside it may too."""
    return run.info is None or run.info.may_grow


def marks_for(log: TrainingLog, info: RunInfo | None) -> Marks:
    usable = info is not None and info.status not in (UNREADABLE, NO_RUN_FILE)
    monitor = info.monitor if usable and info.monitor else default_monitor(log.columns)
    if monitor is None:
        return Marks()
    mode = infer_mode(monitor, info.mode if usable else None)
    best = None
    if usable and info.best_epoch is not None and monitor in log.columns:
        # run.json knows the best even where the log lost rows; the log gives its height.
        value = log.value_at(monitor, info.best_epoch)
        if math.isnan(value) and info.best_value is not None:  # the row is not in the log
            value = info.best_value
        best = (info.best_epoch, value)
    elif monitor in log.columns:
        best = best_epoch(log, monitor, mode)
    if not usable:
        return Marks(monitor=monitor, mode=mode, best=best)
    early = info.stopped_early_at
    if early is None and info.status == "stopped_early" and log.epochs:
        early = log.epochs[-1]
    return Marks(monitor=monitor, mode=mode, best=best, early_stop=early,
                 resumes=info.resume_epochs)


def _label(csv_path: Path, info: RunInfo | None) -> str:
    if info is not None and info.status != UNREADABLE:
        return info.id
    if csv_path.name == LOG_FILE and csv_path.parent.name:
        return csv_path.parent.name
    return csv_path.stem


def _unique_labels(runs: list[PlotRun]) -> list[PlotRun]:
    seen: dict[str, int] = {}
    result = []
    for run in runs:
        count = seen.get(run.label, 0) + 1
        seen[run.label] = count
        label = run.label if count == 1 else f"{run.label} ({count})"
        result.append(PlotRun(label, run.log, run.info, run.marks))
    return result


def all_families(runs: Sequence[PlotRun]) -> list[Family]:
    columns: list[str] = []
    for run in runs:
        columns += [c for c in run.log.columns if c not in columns]
    return metric_families(columns)


def select_families(families: list[Family], wanted: Sequence[str]) -> list[Family]:
    """The families named in `--metrics`, in the order given. A name may be a family
    (`loss`) or any of its columns (`val_loss`)."""
    if not wanted:
        return families
    chosen: list[Family] = []
    for name in wanted:
        match = next((f for f in families if _names(f, name)), None)
        if match is None:
            known = [f.name for f in families]
            columns = [c for f in families for c in f.columns]
            close = difflib.get_close_matches(name, known + columns, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UsageError(
                f"--metrics: no metric {name!r} in the log{hint}; available: {', '.join(known)}"
            )
        if match not in chosen:
            chosen.append(match)
    return chosen


def _names(family: Family, name: str) -> bool:
    if name == family.name or name in family.columns:
        return True
    # `lr` and `learning_rate` both mean the learning-rate panel, whatever the column.
    return family.log_scale and is_learning_rate(name)


def parse_metrics(values: Sequence[str]) -> list[str]:
    """`--metrics loss,accuracy --metrics lr` -> ['loss', 'accuracy', 'lr']."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def epoch_span(runs: Sequence[PlotRun]) -> tuple[int, int]:
    """First and last epoch to show: every logged epoch, and an early stop past them."""
    xs = [e for run in runs for e in run.log.epochs]
    xs += [run.marks.early_stop for run in runs if run.marks.early_stop is not None]
    return (min(xs), max(xs)) if xs else (1, 1)


def positive_range(runs: Sequence[PlotRun], family: Family) -> tuple[float, float] | None:
    """The smallest and largest positive value of the family's columns: what a log scale
    can show. None when there is none, and a log scale would show nothing."""
    values = [v for run in runs for column in family.columns
              for v in run.log.values.get(column, ()) if v > 0]  # nan > 0 is False
    return (min(values), max(values)) if values else None


def describe(run: PlotRun) -> str:
    """One line under a run's title: status, progress and the marks, in words."""
    return " · ".join(describe_parts(run))


def describe_parts(run: PlotRun, marks: bool = True) -> list[str]:
    """The pieces of `describe`, for callers that wrap them to a width; without `marks`,
    only the status and the count of epochs."""
    parts: list[str] = []
    info = run.info
    x = run.log.x_name
    rows = len(run.log)
    if info is not None and info.status not in (UNREADABLE, NO_RUN_FILE):
        parts.append(info.shown_status.replace("_", " "))
        # The log, not run.json: it is what is drawn, and a running run writes it first.
        if info.epochs_planned:
            parts.append(f"{rows}/{info.epochs_planned} epochs")
        else:
            parts.append(plural(rows, x))
    else:
        parts.append(plural(rows, x))
    if not marks:
        return parts
    shown = run.marks
    if shown.best is not None:
        parts.append(f"best {shown.monitor} {shown.best[1]:.4g} at {x} {shown.best[0]}")
    if shown.early_stop is not None:
        parts.append(f"stopped early at epoch {shown.early_stop}")
    if shown.resumes:
        parts.append("resumed at epoch " + ", ".join(str(e) for e in shown.resumes))
    return parts


def plural(count: int, noun: str) -> str:
    """1 epoch, 2 epochs."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def x_label(runs: Sequence[PlotRun]) -> str:
    """What the x axis counts: `epoch`, unless the logs number their rows otherwise."""
    names = list(dict.fromkeys(run.log.x_name for run in runs))
    return " / ".join(names)
