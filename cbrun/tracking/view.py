"""A tracked run is a view of the run directory: what log.csv and run.json hold, sent on.

Each epoch is sent once it is final, after cbrun saved its state and run.json: an epoch
interrupted halfway is never sent, and a resume redoes it and sends it then. The state is
written by a thread of its own (cbrun/state/writer.py) while the next epoch trains, so the
view holds each finished epoch and sends it at a later epoch's end, or at the training's
end, once the writer says its state is on disk (`follow`). A resume
sends first what the tracked run lacks of the epochs already done (asked of MLflow; counted
in run.json for W&B), so a kill between saving an epoch and sending it loses nothing.

The sending itself is done by the tracking process (cbrun/tracking/child.py, fed through
cbrun/tracking/sender.py): the view queues each item and returns, and reads the answers
when it next runs, on the training thread, where it keeps run.json's tracking entries.
Only the run's end waits, for what is still in flight, while the trackers keep answering.

A tracker that fails (server down, refused login, a full disk) costs one warning, never the
run: from then on this process sends it nothing, and run.json lists what it lacks under
tracking.<name>.unsent (an item the tracking process could not take, its queue full or it
gone, or that was still in flight when the run's end stopped waiting, is listed too). A
later resume sends the missing epochs once the tracker is back.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from cbrun.config.tracking import TrackingConfig
from cbrun.run.logs import LogError, TrainingLog, read_log
from cbrun.run.record import RunRecord, TrackedRun
from cbrun.run.rundir import LOG_FILE
from cbrun.state.writer import StateWriter
from cbrun.tracking.params import learning_rate_events, rows
from cbrun.tracking.sender import STALL_SECONDS, Sender, sender_for

PLOT_FILE = "log.png"  # what `cbrun plot` writes beside log.csv by default
TITLES = {"mlflow": "MLflow", "wandb": "W&B"}


def _warn(text: str) -> None:
    click.echo(text, err=True)


class _Tracked:
    """One tracker: its entry in run.json and what this process could not send it."""

    def __init__(self, name: str, state: TrackedRun):
        self.name = name
        self.title = TITLES[name]
        self.state = state
        self.down = False
        self.unsent_epochs: list[int] = []
        self.unsent: list[str] = []

    def lost(self, label: str | int) -> None:
        if isinstance(label, int):
            self.unsent_epochs.append(label)
        else:
            self.unsent.append(label)

    def listed(self) -> list[str]:
        first = [item for item in self.unsent if item in ("the run", "params")]
        rest = [item for item in self.unsent if item not in first]
        return [*first, *_epoch_ranges(self.unsent_epochs), *rest]


class TrackingView:
    def __init__(self, config: TrackingConfig, run_dir: Path, record: RunRecord,
                 params: dict[str, str], warn: Callable[[str], None] = _warn,
                 stall: float = STALL_SECONDS):
        self.run_dir = run_dir
        self.record = record
        self.params = params
        self.warn = warn
        self.stall = stall
        self.log_model = bool((config.mlflow and config.mlflow.log_model)
                              or (config.wandb and config.wandb.log_model))
        names = [name for name in ("mlflow", "wandb") if getattr(config, name) is not None]
        self.tracked = {name: _Tracked(name, record.tracked(name)) for name in names}
        folder = record.file.config_dir
        self.sender: Sender = sender_for(config, run_dir, Path(folder) if folder else None,
                                         {n: t.state for n, t in self.tracked.items()})
        # Items queued and not yet done: {number: (label, status for an end, the trackers
        # that answered for it)}
        self._pending: dict[int, tuple[str | int | None, str | None, set[str]]] = {}
        self._behind = False  # warned that the queue was full
        self._drawn = False  # log.png queued
        # What run.json last held of each entry, but the count of epochs taken: for MLflow
        # a resume asks the store which epochs it holds, so a count that moved alone is no
        # reason to rewrite run.json (fsync'd: milliseconds of every epoch); W&B online
        # relies on the count, so a run tracked by W&B is saved every epoch.
        self._written: dict[str, dict] = {}
        self._every_epoch = "wandb" in self.tracked
        self._writer: StateWriter | None = None  # None: each epoch is on disk when told
        self._held: list[tuple[int, dict[str, float]]] = []  # finished, state maybe not

    def follow(self, writer: StateWriter) -> None:
        """The run's state is written by `writer`, maybe still when an epoch is told."""
        self._writer = writer

    # ------------------------------------------------------------------ the three moments

    def start(self, epochs_done: int) -> None:
        """Open (or, on resume, continue) each tracked run; send the params and whatever it
        lacks of the first `epochs_done` epochs."""
        done = rows(self._log(), epochs_done) if epochs_done else []
        for t in self.tracked.values():
            t.state.error = None
        self._queue("open", "the run")
        self._queue("params", "params", self.params)
        self._queue("known", None)
        for epoch, metrics in done:
            self._queue("epoch", epoch, epoch, metrics)
        self._collect()
        self._save()

    def epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        """`epoch` is 1-based, and its state saved or being saved by the writer followed."""
        self._held.append((epoch, metrics))
        self._send_held()
        self._collect()
        if self._every_epoch or self._changed():
            self._save()

    def trained(self) -> None:
        """Training ended (log.csv is whole): log.png is drawn for the trackers while the
        model is saved and tested."""
        self._send_held(settle=True)
        if not self._drawn:
            self._drawn = True
            log = self._log()
            if log is not None and len(log):
                self._queue("plot", None)

    def finish(self, status: str, stopped_early_at: int | None, note: str | None,
               model_path: Path | None = None) -> None:
        """After the last epoch of this process: finals, events, files, the end state."""
        file = self.record.file
        log = self._log()
        step = file.epochs_done
        summary: dict[str, float] = {}
        if file.best is not None and file.monitor is not None:
            summary[f"best_{file.monitor.name}"] = file.best.value
            summary["best_epoch"] = float(file.best.epoch)
        if log is not None and len(log):
            for column in log.columns:
                summary[f"final_{column}"] = log.values[column][-1]
        for name, value in (file.test or {}).items():
            key = name if name.startswith("test_") else f"test_{name}"
            summary[key] = float(value)
        tags = {"cbrun.status": status, "cbrun.epochs_done": str(step)}
        if file.baseline is not None:  # the trivial model's score, to compare runs by
            summary.update({f"baseline_{k}": float(v) for k, v in file.baseline.metrics.items()})
            tags["cbrun.baseline"] = f"always predicting {file.baseline.predicts}"
            verdict = file.baseline.verdict(file.monitor, file.best)
            if verdict:
                tags["cbrun.no_better_than_baseline"] = verdict[:5000]
        if stopped_early_at is not None:
            tags["cbrun.stopped_early_at"] = str(stopped_early_at)
        if note:
            tags["cbrun.stop_reason"] = note[:5000]
        events = learning_rate_events(log) + ([f"epoch {step}: {note}"] if note else [])
        self.trained()
        self._queue("summary", "final values", summary, tags, step)
        if events:
            self._queue("text", "events", "events.txt", "\n".join(events) + "\n")
        for path in self._files(log, model_path):
            self._queue("file", f"file {path.relative_to(self.run_dir).as_posix()}", path)
        self._end(status)

    def abort(self, status: str) -> None:
        """The process is ending mid-run (Ctrl-C, SIGTERM, a crash): what was sent stays,
        and each tracked run is told how it ended. A resume reopens it."""
        self._send_held(settle=True)
        self._end(status)

    def _end(self, status: str) -> None:
        """The end state queued last; then the wait for what is in flight, bounded."""
        self._queue("end", "end status", status, status=status)
        finished = self.sender.wait(self.stall)
        self._collect()
        if not finished:
            why = self.sender.gone or (f"it answered nothing for {self.stall:g} s at the "
                                       "run's end")
            self._give_up(why)
        self.sender.close()
        self._save()

    # ------------------------------------------------------------------ the parts

    def _queue(self, op: str, label: str | int | None, *args: Any,
               status: str | None = None) -> None:
        """Hands one item to the tracking process, never waiting. An item it cannot take
        (its queue full, or it gone) is listed as unsent."""
        seq = self.sender.put(op, label, *args)
        if seq is not None:
            self._pending[seq] = (label, status, set())
            return
        if self.sender.gone is not None:
            self._give_up(self.sender.gone)
        elif not self._behind:
            self._behind = True
            self.warn(f"warning: the trackers are {self.sender.queue_items} items behind; what finds "
                      "their queue full is not sent, and run.json lists it under "
                      "tracking.<name>.unsent")
        for t in self.tracked.values():
            if label is not None:
                t.lost(label)

    def send_written(self) -> None:
        """The held epochs whose state has been written since, handed over (inside an
        epoch: never waits)."""
        if self._held and self._writer is not None and \
                (self._writer.written or 0) >= self._held[0][0]:
            self._send_held()

    def _send_held(self, settle: bool = False) -> None:
        """Hands over the held epochs whose state is on disk; with `settle`, once the write
        in flight is done (the training's end: an epoch whose write failed is not sent, and
        a resume redoes it)."""
        if self._writer is None:
            on_disk = self._held[-1][0] if self._held else 0
        else:
            if settle:
                self._writer.settle()
            on_disk = self._writer.written or 0
        while self._held and self._held[0][0] <= on_disk:
            epoch, metrics = self._held.pop(0)
            self._queue("epoch", epoch, epoch, metrics)

    def _collect(self) -> None:
        """Applies what the tracking process answered so far (never waits)."""
        for answer in self.sender.answers():
            if answer[0] == "done":
                self._pending.pop(answer[1], None)
            elif answer[0] == "result":
                self._result(*answer[1:])

    def _result(self, seq: int, name: str, sent: bool | None, fields: dict,
                warning: str | None) -> None:
        t = self.tracked[name]
        if seq not in self._pending:
            return  # given up on: already listed
        label, status, answered = self._pending[seq]
        answered.add(name)
        for key, value in fields.items():
            setattr(t.state, key, value)
        if warning:
            self.warn(warning)
        if fields.get("error"):
            t.down = True
        if sent is None or label is None:
            return
        if not sent:
            t.lost(label)
        elif isinstance(label, int):
            t.state.last_epoch = max(label, t.state.last_epoch or 0)
        elif status is not None:
            t.state.status = status

    def _give_up(self, why: str) -> None:
        """The tracking process cannot take or finish items: every tracker still working
        is warned once, and what was still in flight for each is listed as unsent."""
        for t in self.tracked.values():
            if not t.down:
                t.down = True
                t.state.error = why
                self.warn(f"warning: {t.title} tracking failed ({why}); the run goes on "
                          f"without it, and run.json lists what it did not get under "
                          f"tracking.{t.name}.unsent")
            for label, _, answered in self._pending.values():
                if label is not None and t.name not in answered:
                    t.lost(label)
        self._pending.clear()

    def _log(self) -> TrainingLog | None:
        try:
            return read_log(self.run_dir / LOG_FILE)
        except LogError:
            return None  # no epoch finished yet

    def _files(self, log: TrainingLog | None, model_path: Path | None) -> list[Path]:
        names = ["config.yaml", "resolved.yaml", LOG_FILE]
        files = [self.run_dir / n for n in names if (self.run_dir / n).is_file()]
        if log is not None and len(log):
            files.append(self.run_dir / PLOT_FILE)  # drawn by the tracking process first
        if self.log_model and model_path is not None and model_path.is_file():
            files.append(model_path)
        return files

    def _changed(self) -> bool:
        """Whether an entry changed in what a resume or a reader of run.json needs: its run
        id or page, an error, what is unsent, the end state."""
        return any(self._entry(t) != self._written.get(t.name) for t in self.tracked.values())

    def _entry(self, t: _Tracked) -> dict:
        return {**t.state.model_dump(exclude={"last_epoch", "unsent"}), "unsent": t.listed()}

    def _save(self) -> None:
        # The record claims the epochs trained so far: once their state is on disk.
        if self._writer is not None:
            self._writer.settle()
        for t in self.tracked.values():
            t.state.unsent = t.listed()
            self._written[t.name] = self._entry(t)
        self.record.save()


def _epoch_ranges(epochs: list[int]) -> list[str]:
    """[1, 2, 3, 5] -> ['epochs 1-3', 'epoch 5']."""
    out: list[str] = []
    ordered = sorted(set(epochs))
    start = prev = None
    for epoch in [*ordered, None]:
        if start is not None and (epoch is None or epoch != prev + 1):
            out.append(f"epoch {start}" if start == prev else f"epochs {start}-{prev}")
            start = None
        if epoch is not None and start is None:
            start = epoch
        prev = epoch
    return out
