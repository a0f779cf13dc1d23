"""Reading a run directory's `run.json` for the commands that show runs (`runs`, `plot`).

Reading never raises for what the file holds: a run whose run.json is missing keys shows
what it has, one whose values do not fit cbrun's record (cbrun/run/record.py, the model run.json
is written through) shows the rest and says what was dropped, and one whose run.json is
unreadable shows as `unreadable` with the reason, so one broken directory cannot take the
whole listing down. Epoch numbers in run.json are
1-based, like everything shown to humans.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cbrun.run.record import RunFile, read_lenient
from cbrun.run.rundir import LOG_FILE, RUN_FILE, run_in_use
from cbrun.sweep.directory import SWEEP_JSON, TRIALS_DIR

RUNNING = "running"
UNREADABLE = "unreadable"
# A directory with a log.csv but no run.json: made by hand, or by something other than cbrun.
NO_RUN_FILE = "unknown"
# Shown for a run whose run.json says running but whose process is gone (kill -9, a crash
# that could not write its status): `cbrun resume` can continue it like any interruption.
PROCESS_GONE = "interrupted"


@dataclass(frozen=True)
class Segment:
    """One train or resume process of a run; epochs are 1-based and inclusive."""

    kind: str
    first_epoch: int | None
    last_epoch: int | None
    status: str | None
    started: datetime | None = None


@dataclass(frozen=True)
class RunInfo:
    """What run.json says about a run, every field optional.

    status: as recorded, or `unreadable` / `unknown` (no run.json).
    problem: why run.json could not be read, or which of its values were dropped; None
        when it read whole.
    process_alive: for a `running` run, whether a cbrun process still works on it (it
        holds the run's lock; for an older run without a lock file, its pid still exists
        on this host); None where that cannot be known.
    """

    path: Path
    id: str
    status: str
    problem: str | None = None
    name: str | None = None
    created: datetime | None = None
    finished: datetime | None = None
    duration_s: float | None = None
    epochs_done: int | None = None
    epochs_planned: int | None = None
    monitor: str | None = None
    mode: str | None = None
    best_epoch: int | None = None
    best_value: float | None = None
    stopped_early_at: int | None = None
    segments: tuple[Segment, ...] = ()
    process_alive: bool | None = None
    test: tuple[tuple[str, float], ...] = ()  # ("test_loss", 0.31), ... after a test split
    baseline: tuple[tuple[str, float], ...] = ()  # the trivial model's ("val_loss", 1.1), ...
    verdict: str | None = None  # when the run is no better than its baseline
    updated: datetime | None = None  # when run.json was last written
    # For a trial of a sweep (run.json's `sweep`): its number, and its sweep directory's name.
    trial: int | None = None
    sweep: str | None = None
    overfit_batches: int | None = None  # a debug run on N batches (run.json)

    @property
    def shown_status(self) -> str:
        if self.status == RUNNING and self.process_alive is False:
            return PROCESS_GONE
        return self.status

    @property
    def is_running(self) -> bool:
        return self.shown_status == RUNNING

    @property
    def may_grow(self) -> bool:
        """Whether the run may still append rows: it runs, or no readable run.json says
        otherwise (a foreign CSV, a write caught halfway by a writer that does not rename)."""
        return self.is_running or self.status in (UNREADABLE, NO_RUN_FILE)

    @property
    def resume_epochs(self) -> tuple[int, ...]:
        """The first epoch trained by each resume: where the run picked up again."""
        return tuple(
            s.first_epoch for s in self.segments if s.kind == "resume" and s.first_epoch
        )

    @property
    def log_path(self) -> Path:
        return self.path / LOG_FILE

    def elapsed_s(self, now: datetime | None = None) -> float | None:
        """Training time so far. run.json adds a segment's time to `duration_s` only when
        the segment ends, so for a live run the current segment's time is added here."""
        # Recorded running, its process gone (kill -9); an interrupted run's time is counted.
        gone = (self.status == RUNNING and self.process_alive is False
                and self.updated is not None)
        if (not (self.is_running or gone) or not self.segments
                or self.segments[-1].started is None):
            return self.duration_s
        started = self.segments[-1].started
        if started.tzinfo is None:  # cbrun writes UTC with an offset; a bare time is UTC too
            started = started.replace(tzinfo=UTC)
        # A process killed without a word last wrote run.json at its last epoch's end: its
        # time counts up to then.
        end = self.updated if gone else (now or datetime.now(UTC))
        running = max((end - started).total_seconds(), 0.0)
        return (self.duration_s or 0.0) + running


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and ((path / RUN_FILE).is_file() or (path / LOG_FILE).is_file())


def find_runs(root: Path) -> list[Path]:
    """Run directories in `root`, or `root` itself when it is one (by the same rule that
    lists it from its parent: a run.json or a log.csv)."""
    if is_run_dir(root):
        return [root]
    return [child for child in _children(root) if is_run_dir(child)]


def nested_run_folders(root: Path) -> list[Path]:
    """Folders in `root` that are no run but hold runs (a sweep's subfolder): `find_runs`
    does not descend into them, so a listing says they were skipped."""
    if is_run_dir(root):
        return []
    return [child for child in _children(root)
            if child.is_dir() and not is_run_dir(child)
            and any(is_run_dir(grandchild) for grandchild in _children(child))]


def sweep_dirs(root: Path) -> list[Path]:
    """The sweep directories (`cbrun sweep`: sweep.json, and trials/ with a run directory per
    trial) at `root`, in it, or one level further (runs/ holds them in sweeps/)."""
    found, level = [], [root]
    for _ in range(3):
        found += [p for p in level if (p / SWEEP_JSON).is_file()]
        level = [c for p in level for c in _children(p) if c.is_dir() and not is_run_dir(c)]
    return found


def sweep_trials(sweep_dir: Path) -> list[Path]:
    """The run directories of a sweep's trials."""
    return [child for child in _children(sweep_dir / TRIALS_DIR) if is_run_dir(child)]


def _children(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except OSError:
        return []


def read_run_info(run_dir: Path) -> RunInfo:
    run_dir = Path(run_dir)
    file = run_dir / RUN_FILE
    if not file.exists():
        return RunInfo(path=run_dir, id=run_dir.name, status=NO_RUN_FILE)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return _unreadable(run_dir, f"{file}: {_reason(exc)}")
    if not isinstance(data, dict):
        return _unreadable(run_dir, f"{file}: expected a JSON object, got {type(data).__name__}")
    info = _from_dict(run_dir, data)
    try:
        updated = datetime.fromtimestamp(file.stat().st_mtime, UTC)
    except OSError:
        return info
    return dataclasses.replace(info, updated=updated)


def _unreadable(run_dir: Path, problem: str) -> RunInfo:
    return RunInfo(path=run_dir, id=run_dir.name, status=UNREADABLE, problem=problem)


def _reason(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc)


def _from_dict(run_dir: Path, data: dict[str, Any]) -> RunInfo:
    file, dropped = read_lenient(data)
    status = file.status or NO_RUN_FILE
    return RunInfo(
        path=run_dir,
        id=file.id or run_dir.name,
        status=status,
        problem=f"{run_dir / RUN_FILE}: ignored {'; '.join(dropped)}" if dropped else None,
        name=file.name,
        created=_time(file.created),
        finished=_time(file.finished),
        duration_s=file.duration_s,
        epochs_done=file.epochs_done if "epochs_done" in file.model_fields_set else None,
        epochs_planned=file.epochs_planned,
        monitor=file.monitor.name if file.monitor else None,
        mode=file.monitor.mode if file.monitor else None,
        best_epoch=file.best.epoch if file.best else None,
        best_value=file.best.value if file.best else None,
        stopped_early_at=file.stopped_early_at,
        segments=tuple(Segment(kind=s.kind, first_epoch=s.first_epoch,
                               last_epoch=s.last_epoch, status=s.status,
                               started=_time(s.started)) for s in file.segments),
        process_alive=_alive(run_dir, file) if status == RUNNING else None,
        test=tuple((name, float(value)) for name, value in (file.test or {}).items()),
        baseline=tuple((name, float(value)) for name, value in
                       (file.baseline.metrics.items() if file.baseline else ())),
        verdict=file.baseline.verdict(file.monitor, file.best) if file.baseline else None,
        trial=file.sweep.trial if file.sweep else None,
        sweep=Path(file.sweep.sweep_dir).name if file.sweep else None,
        overfit_batches=file.overfit_batches,
    )


def _alive(run_dir: Path, file: RunFile) -> bool | None:
    """Whether a process still works on the run. Its lock says so for certain (the kernel
    drops it when the process dies, even on kill -9); a recorded pid may have been handed to
    another process since, so it is asked only for runs older than the lock. None for such
    a run from another host, or without a usable pid."""
    held = run_in_use(run_dir)
    if held is not None:
        return held
    pid, host = file.pid, file.host
    if pid is None or pid <= 0 or (host is not None and host != socket.gethostname()):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # the pid exists but belongs to another user
    except OSError:
        return None  # the check itself failed: nothing is known
    return True


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
