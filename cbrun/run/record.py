"""run.json: one typed record, written and read through the same pydantic model.

`RunRecord` is the only code that changes a run's record; every other module calls its
methods. Reading comes in two strengths:
  - `RunRecord.load` (resume): the file must be what cbrun writes. A hand edit that broke
    it (not UTF-8, a string where a number belongs, a null segment) is a UsageError naming
    the file, the field and what it holds: one line, exit 2.
  - `read_lenient` (`runs`, `plot`): what cannot be read is dropped and reported, the rest
    is shown, so one broken directory never takes a listing down.
Older files (cbrun 0.1: no stop_reason, a stop sentence instead of the enum) read as well.
See docs/ARCHITECTURE.md, "Where each concept lives".
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import socket
import threading
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cbrun.errors import UsageError, format_loc
from cbrun.run.rundir import RUN_FILE, atomic_write_bytes, iso, utc_now, versions

Status = Literal["running", "completed", "stopped_early", "interrupted", "failed", "pruned"]
# A segment whose process vanished without a word (kill -9) is marked killed afterwards.
SegmentStatus = Literal["running", "completed", "stopped_early", "interrupted", "failed",
                        "pruned", "killed"]
# Epochs, pids, counts: C ints in Keras and the kernel; JSON integers have no size limit.
Count = Annotated[int, Field(ge=0, lt=2**31)]
Number = Annotated[float, Field(allow_inf_nan=False)]


class StopReason(StrEnum):
    """Why a run ended before its planned epochs."""

    EARLY_STOPPING = "early_stopping"  # a callback whose spec says it stopped the run
    CALLBACK = "callback"  # some other callback set model.stop_training
    NAN_LOSS = "nan_loss"  # the loss became NaN or inf
    PRUNED = "pruned"  # a sweep ended the trial
    NO_SPACE = "no_space"  # a write failed: the disk (or a quota, or a file size limit) was full


# What cbrun 0.1 wrote in `stop_reason`: a sentence.
# Held around every run.json write: a second Ctrl-C or SIGTERM marks the run from another
# thread (cbrun/run/segment.py) and must not interleave with a write of the main thread.
SAVE_LOCK = threading.RLock()
_OLD_NAN_SENTENCE = "loss became NaN or inf"


class _Part(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow", validate_assignment=True)


class Monitor(_Part):
    name: str
    mode: Literal["min", "max"]


class Best(_Part):
    epoch: Count
    value: Number


class Segment(_Part):
    """One train or resume process of a run; epochs are 1-based and inclusive."""

    kind: Literal["train", "resume"] = "train"
    started: str | None = None
    finished: str | None = None
    pid: Count | None = None
    command: list[str] = Field(default_factory=list)
    first_epoch: Count | None = None
    last_epoch: Count | None = None
    status: SegmentStatus | None = None


class TrackedRun(_Part):
    """The run an experiment tracker holds for this one (issue 15, docs/tracking.md)."""

    run_id: str | None = None
    url: str | None = None  # None where the tracker has no page for it (a file store, offline)
    last_epoch: Count | None = None  # the newest epoch this tracker took
    unsent: list[str] = Field(default_factory=list)  # "the run", "params", "epochs 1-3", ...
    error: str | None = None  # why the last process stopped sending to it
    status: str | None = None  # the end state cbrun gave the tracked run


class MlflowRun(TrackedRun):
    tracking_uri: str | None = None
    experiment_id: str | None = None


class WandbRun(TrackedRun):
    mode: Literal["online", "offline"] | None = None
    offline_dir: str | None = None  # where offline files are, relative to the run dir


class Tracking(_Part):
    """Experiment trackers following the run, one entry per tracker."""

    mlflow: MlflowRun | None = None
    wandb: WandbRun | None = None


class SweepTrial(_Part):
    """The sweep this run is a trial of (issue 14): enough for the trial process, and a
    resume of it, to open its Optuna study and report each epoch's value there."""

    id: str  # the sweep's id: sweep.json and its study record it too
    trial: Count  # the trial's number in the study
    study: str
    metric: str
    direction: Literal["minimize", "maximize"]
    pruner: dict[str, Any]  # the sweep file's `pruner:` settings, {type: median, ...}
    # With any password shown as ***: the real URL reaches the trial in its environment.
    storage: str
    sweep_dir: str


class Baseline(_Part):
    """The trivial model's score (issue 21): what it predicts, on which split, its logged
    metrics (`val_loss`, `val_accuracy`...), computed before epoch 1."""

    split: Literal["validation", "train"]
    predicts: str
    metrics: dict[str, Number] = Field(default_factory=dict)

    def verdict(self, monitor: Monitor | None, best: Best | None) -> str | None:
        """One line when the run's best monitored value is no better than the baseline's
        (by 1% of it, at least), else None."""
        if monitor is None or best is None or monitor.name not in self.metrics:
            return None
        base = self.metrics[monitor.name]
        margin = 0.01 * abs(base)
        better = best.value < base - margin if monitor.mode == "min" else \
            best.value > base + margin
        if better:
            return None
        return (f"the run is no better than its baseline: best {monitor.name} "
                f"{best.value:.4g}, against {base:.4g} for always predicting "
                f"{self.predicts}")


class RunFile(_Part):
    """Every key of run.json. Keys this cbrun does not know are kept as they are."""

    id: str | None = None
    name: str | None = None
    status: Status | None = None
    created: str | None = None
    finished: str | None = None
    duration_s: Number | None = None
    pid: Count | None = None
    host: str | None = None
    command: list[str] = Field(default_factory=list)
    seed: Annotated[int, Field(ge=0, lt=2**32)] | None = None
    epochs_planned: Count | None = None
    epochs_done: Count = 0
    monitor: Monitor | None = None
    best: Best | None = None
    stopped_early_at: Count | None = None
    stop_reason: Annotated[StopReason | None, Field(strict=False)] = None
    stop_note: str | None = None  # what the callback that stopped the run said
    versions: dict[str, str] = Field(default_factory=dict)
    segments: list[Segment] = Field(default_factory=list)
    error: str | None = None
    config_dir: str | None = None
    data_files: dict[str, str] | None = None  # each data file's fingerprint at the start
    overrides: list[str] = Field(default_factory=list)
    config_files: list[str] | None = None  # the files a composed config was made of
    steps_per_execution: Count | None = None
    test: dict[str, Number] | None = None  # test-split metrics (issue 9)
    baseline: Baseline | None = None
    tracking: Tracking | None = None
    sweep: SweepTrial | None = None
    # A debug run (`--overfit-batches N`) trains and validates on the same N batches: its
    # scores say the pipeline can learn, not that the model is good.
    overfit_batches: Count | None = None

    @field_validator("stop_reason", mode="before")
    @classmethod
    def _old_sentence(cls, value: Any) -> Any:
        # cbrun 0.1 kept the stop message here; the reason is all that is known from it.
        if isinstance(value, str) and value not in StopReason.__members__.values():
            if value == _OLD_NAN_SENTENCE:
                return StopReason.NAN_LOSS
            return (StopReason.EARLY_STOPPING if value.startswith("EarlyStopping")
                    else StopReason.CALLBACK)
        return value


def _describe(error: dict[str, Any]) -> str:
    loc = format_loc(error["loc"]) or "the file"
    given = error.get("input")
    shown = repr(given) if not isinstance(given, dict) else "an object"
    if len(shown) > 60:
        shown = shown[:57] + "..."
    message = re.sub(r" or instance of \w+", "", error["msg"])  # a class name means nothing
    return f"{loc}: {message[0].lower()}{message[1:]} (it holds {shown})"


def parse(data: Any) -> RunFile:
    """ValueError with one line per problem when `data` is no record cbrun wrote."""
    if not isinstance(data, dict):
        raise ValueError(  # noqa: TRY004 - one exception type for every "not a record"
            f"expected a JSON object, got {type(data).__name__}")
    try:
        return RunFile.model_validate(data)
    except ValidationError as exc:
        raise ValueError("; ".join(_describe(e) for e in exc.errors())) from None


def read_lenient(data: dict[str, Any]) -> tuple[RunFile, list[str]]:
    """The record with every value that does not fit dropped, and what was dropped."""
    data = copy.deepcopy(data)
    problems: list[str] = []
    while True:
        try:
            return RunFile.model_validate(data), problems
        except ValidationError as exc:
            for error in exc.errors():
                problems.append(_describe(error))
                _drop(data, error["loc"])


def _drop(data: dict[str, Any], loc: tuple[Any, ...]) -> None:
    """Remove the value at `loc`: a field of a segment, a whole segment that is no object,
    else the top-level key."""
    key = loc[0]
    if key == "segments" and len(loc) >= 2 and isinstance(data.get("segments"), list):
        segments = data["segments"]
        index = loc[1]
        if isinstance(index, int) and index < len(segments):
            if len(loc) >= 3 and isinstance(segments[index], dict):
                segments[index].pop(loc[2], None)
            else:
                segments[index] = None
                data["segments"] = [s for s in segments if s is not None]
            return
    data.pop(key, None)


class RunRecord:
    """A run directory's record, saved atomically (other processes read it while we run)."""

    def __init__(self, run_dir: Path, file: RunFile):
        self.run_dir = run_dir
        self.file = file

    @property
    def path(self) -> Path:
        return self.run_dir / RUN_FILE

    # Read-only views the session and commands use.
    @property
    def status(self) -> Status | None:
        return self.file.status

    @property
    def epochs_done(self) -> int:
        return self.file.epochs_done

    @property
    def best(self) -> dict[str, Any] | None:
        return self.file.best.model_dump() if self.file.best else None

    @classmethod
    def new(cls, run_dir: Path, name: str, seed: int, epochs: int,
            monitor: tuple[str, str] | None, command: list[str], config_dir: Path,
            overrides: list[str], sweep: SweepTrial | None = None,
            data_files: dict[str, str] | None = None,
            config_files: list[str] | None = None, backend: str = "tensorflow",
            overfit_batches: int | None = None) -> RunRecord:
        file = RunFile(
            id=run_dir.name, name=name, status="running", created=iso(utc_now()),
            duration_s=0.0, pid=os.getpid(), host=socket.gethostname(), command=command,
            seed=seed, epochs_planned=epochs,
            monitor=Monitor(name=monitor[0], mode=monitor[1]) if monitor else None,
            versions=versions(backend), config_dir=str(config_dir), overrides=list(overrides),
            sweep=sweep, data_files=data_files or None, config_files=config_files or None,
            overfit_batches=overfit_batches)
        record = cls(run_dir, file)
        record.save()
        return record

    @classmethod
    def load(cls, run_dir: Path) -> RunRecord:
        path = run_dir / RUN_FILE
        try:
            text = path.read_bytes().decode("utf-8")
            data = json.loads(text)
        except FileNotFoundError:
            raise UsageError(f"{run_dir} is not a run directory (no run.json); give a "
                             "folder that `cbrun train` created, e.g. runs/<id>") from None
        except UnicodeDecodeError as exc:
            raise UsageError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}); "
                             "was it edited? cbrun writes it as UTF-8 JSON") from None
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path} is not valid JSON (line {exc.lineno}, column "
                             f"{exc.colno}: {exc.msg}); was it edited?") from None
        try:
            file = parse(data)
        except ValueError as exc:
            raise UsageError(f"{path} is not a run record cbrun wrote: {exc}; was it "
                             "edited?") from None
        if not file.segments or file.status is None:
            raise UsageError(f"{path} is not a run record cbrun wrote (no status or no "
                             "segments); was it edited?")
        return cls(run_dir, file)

    def save(self) -> None:
        text = self.file.model_dump_json(indent=2, exclude_none=False)
        with SAVE_LOCK:
            atomic_write_bytes(self.path, (text + "\n").encode())

    # --- changes, each a step of a run's life -------------------------------------------

    def set_steps_per_execution(self, steps: int) -> None:
        self.file.steps_per_execution = steps

    def set_test(self, values: dict[str, float]) -> None:
        """The test split's metrics with the weights the run ends with; a value that is not
        finite (a diverged model) is left out, as run.json holds numbers only."""
        self.file.test = {k: v for k, v in values.items() if math.isfinite(v)}

    def set_baseline(self, value: dict[str, Any] | None) -> None:
        self.file.baseline = None if value is None else Baseline.model_validate(value)
        self.save()

    def begin_segment(self, kind: str, first_epoch: int, command: list[str]) -> None:
        for segment in self.file.segments:
            if segment.status == "running":  # its process died without a word (kill -9)
                segment.status = "killed"
                self._count_killed(segment)
        self.file.status = "running"
        self.file.pid = os.getpid()
        self.file.host = socket.gethostname()
        self.file.finished = None
        self.file.error = None
        self.file.segments.append(Segment(
            kind=kind, started=iso(utc_now()), pid=os.getpid(), command=command,
            first_epoch=first_epoch, last_epoch=first_epoch - 1, status="running"))
        self.save()

    def _count_killed(self, segment: Segment) -> None:
        """A killed process's time, up to its last word: run.json, written at each epoch's
        end, was last written by it."""
        if segment.started is None or segment.finished is not None:
            return
        try:
            last = datetime.fromtimestamp(self.path.stat().st_mtime, UTC)
        except OSError:
            return
        started = datetime.fromisoformat(segment.started)
        if started.tzinfo is None:
            started = started.replace(tzinfo=UTC)
        segment.finished = iso(last)
        self.file.duration_s = round(
            (self.file.duration_s or 0.0) + max((last - started).total_seconds(), 0.0), 3)

    def resume_from(self, epochs_done: int, epochs_planned: int,
                    best: dict[str, Any] | None) -> None:
        """A resume restarts after `epochs_done`, the epoch its saved state holds."""
        self.file.epochs_planned = epochs_planned
        self.file.epochs_done = epochs_done
        self.file.best = Best(**best) if best else None
        self.file.stopped_early_at = None
        self.file.stop_reason = None
        self.file.stop_note = None
        self.file.test = None  # evaluated again when the resumed run ends
        if self.file.segments:
            self.file.segments[-1].first_epoch = epochs_done + 1
        self.save()

    def tracked(self, tracker: Literal["mlflow", "wandb"]) -> TrackedRun:
        """This run's entry for `tracker`, made empty on first use; the tracking view fills
        it in (typed: a wrong value fails on assignment) and saves through `save`."""
        if self.file.tracking is None:
            self.file.tracking = Tracking()
        if getattr(self.file.tracking, tracker) is None:
            setattr(self.file.tracking, tracker,
                    MlflowRun() if tracker == "mlflow" else WandbRun())
        return getattr(self.file.tracking, tracker)

    def add_overrides(self, overrides: list[str]) -> None:
        self.file.overrides.extend(overrides)
        self.save()

    def epoch_done(self, epochs_done: int, best: dict[str, Any] | None) -> None:
        """Updates the record in memory; the caller saves it once the epoch's state is."""
        self.file.epochs_done = epochs_done
        self.file.best = Best(**best) if best else None
        if self.file.segments:
            self.file.segments[-1].last_epoch = epochs_done

    def interrupted(self, epochs_done: int, best: dict[str, Any] | None, what: str) -> None:
        """What is on disk is what resume will use: the record says that."""
        self.epoch_done(epochs_done, best)
        self.finish("interrupted", error=f"interrupted by {what}")

    def finish(self, status: Status, error: str | None = None, *,
               stopped_early_at: int | None = None, stop_reason: StopReason | None = None,
               stop_note: str | None = None) -> None:
        now = utc_now()
        self.file.status = status
        self.file.finished = iso(now)
        self.file.error = error
        if status in ("completed", "stopped_early", "failed", "pruned"):
            self.file.stopped_early_at = stopped_early_at
            self.file.stop_reason = stop_reason
            self.file.stop_note = stop_note
        if self.file.segments:
            segment = self.file.segments[-1]
            segment.finished = iso(now)
            segment.status = status
            if segment.started:
                started = datetime.fromisoformat(segment.started)
                self.file.duration_s = round(
                    (self.file.duration_s or 0.0) + (now - started).total_seconds(), 3)
        self.save()
