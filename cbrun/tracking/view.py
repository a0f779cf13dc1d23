"""A tracked run is a view of the run directory: what log.csv and run.json hold, sent on.

Each epoch is sent once it is final, after cbrun saved its state and run.json: an epoch
interrupted halfway is never sent, and a resume redoes it and sends it then. A resume
sends first what the tracked run lacks of the epochs already done (asked of MLflow; counted
in run.json for W&B), so a kill between saving an epoch and sending it loses nothing.

A tracker that fails (server down, refused login, a full disk) costs one warning, never the
run: from then on this process sends it nothing, and run.json lists what it lacks under
tracking.<name>.unsent. A later resume sends the missing epochs once the tracker is back.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from cbrun.config.tracking import TrackingConfig
from cbrun.errors import CbrunError
from cbrun.run.logs import LogError, TrainingLog, read_log
from cbrun.run.record import RunRecord, TrackedRun
from cbrun.run.rundir import LOG_FILE
from cbrun.tracking.params import learning_rate_events, rows
from cbrun.tracking.stores import StoreUnavailable

PLOT_FILE = "log.png"  # what `cbrun plot` writes beside log.csv by default


def _warn(text: str) -> None:
    click.echo(text, err=True)


class _Tracked:
    """One tracker and what this process could not send it."""

    def __init__(self, sink: Any, state: TrackedRun):
        self.sink = sink
        self.state = state
        self.down = False
        self.unsent_epochs: list[int] = []
        self.unsent: list[str] = []
        # Epochs the tracked run held when this process began. A resume that falls back to
        # an older state (the newest was damaged) redoes epochs that were sent; cbrun's
        # resume is exact, so they would only repeat the same values.
        self.held: set[int] = set()

    def listed(self) -> list[str]:
        first = [item for item in self.unsent if item in ("the run", "params")]
        rest = [item for item in self.unsent if item not in first]
        return [*first, *_epoch_ranges(self.unsent_epochs), *rest]


class TrackingView:
    def __init__(self, config: TrackingConfig, run_dir: Path, record: RunRecord,
                 params: dict[str, str], warn: Callable[[str], None] = _warn):
        from cbrun.tracking.mlflow_sink import MlflowSink
        from cbrun.tracking.wandb_sink import WandbSink

        self.run_dir = run_dir
        self.record = record
        self.params = params
        self.warn = warn
        self.log_model = bool((config.mlflow and config.mlflow.log_model)
                              or (config.wandb and config.wandb.log_model))
        sinks: list[Any] = []
        if config.mlflow is not None:
            folder = record.file.config_dir
            sinks.append(MlflowSink(config.mlflow, run_dir, Path(folder) if folder else None))
        if config.wandb is not None:
            sinks.append(WandbSink(config.wandb, run_dir))
        self.tracked = [_Tracked(s, record.tracked(s.name)) for s in sinks]

    # ------------------------------------------------------------------ the three moments

    def start(self, epochs_done: int) -> None:
        """Open (or, on resume, continue) each tracked run; send the params and whatever it
        lacks of the first `epochs_done` epochs."""
        done = rows(self._log(), epochs_done) if epochs_done else []
        for t in self.tracked:
            t.state.error = None
            if not self._send(t, "the run", lambda t=t: t.sink.open(t.state)):
                t.unsent_epochs += [epoch for epoch, _ in done]
                t.unsent.append("params")
                continue
            self._send(t, "params", lambda t=t: t.sink.log_params(self.params))
            known = self._sent_steps(t)
            if known is None:  # the tracker failed when asked
                t.unsent_epochs += [epoch for epoch, _ in done]
                continue
            t.held = known
            for epoch, metrics in done:
                if epoch not in known:
                    self._epoch(t, epoch, metrics)
        self._save()

    def epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        """`epoch` is 1-based and already saved in the run's state."""
        for t in self.tracked:
            self._epoch(t, epoch, metrics)
        self._save()

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
        files = self._files(log, model_path)
        for t in self.tracked:
            self._send(t, "final values", lambda t=t: t.sink.log_summary(summary, tags, step))
            if events:
                self._send(t, "events", lambda t=t: t.sink.log_text("events.txt",
                                                                    "\n".join(events) + "\n"))
            for path in files:
                self._send(t, f"file {path.relative_to(self.run_dir).as_posix()}",
                           lambda t=t, path=path: t.sink.log_file(path))
            self._end(t, status)
        self._save()

    def abort(self, status: str) -> None:
        """The process is ending mid-run (Ctrl-C, SIGTERM, a crash): what was sent stays,
        and each tracked run is told how it ended. A resume reopens it."""
        for t in self.tracked:
            self._end(t, status)
        self._save()

    def _end(self, t: _Tracked, status: str) -> None:
        if self._send(t, "end status", lambda: t.sink.end(status)):
            t.state.status = status

    # ------------------------------------------------------------------ the parts

    def _epoch(self, t: _Tracked, epoch: int, metrics: dict[str, float]) -> None:
        if epoch in t.held:
            return
        if self._send(t, None, lambda: t.sink.log_epoch(epoch, metrics)):
            t.state.last_epoch = max(epoch, t.state.last_epoch or 0)
        else:
            t.unsent_epochs.append(epoch)

    def _sent_steps(self, t: _Tracked) -> set[int] | None:
        asked: list[set[int] | None] = []
        if not self._send(t, None, lambda: asked.append(t.sink.sent_steps())):
            return None
        if asked[0] is not None:
            return asked[0]
        return set(range(1, (t.state.last_epoch or 0) + 1))

    def _send(self, t: _Tracked, item: str | None, call: Callable[[], Any]) -> bool:
        """Run `call` unless the tracker failed before; a failure is warned about once and
        recorded, and `item` (None: the caller records it) joins the unsent list."""
        if not t.down:
            try:
                with t.sink.quiet():
                    call()
                return True
            except Exception as exc:  # noqa: BLE001 - any tracker failure: warned, recorded
                t.down = True
                reason = (str(exc) if isinstance(exc, StoreUnavailable) else
                          f"{type(exc).__name__}: {exc}").strip()[:1000]
                t.state.error = reason
                self.warn(f"warning: {t.sink.title} tracking failed ({reason.splitlines()[0]}); "
                          f"the run goes on without it, and run.json lists what it did not "
                          f"get under tracking.{t.sink.name}.unsent")
        if item is not None:
            t.unsent.append(item)
        return False

    def _log(self) -> TrainingLog | None:
        try:
            return read_log(self.run_dir / LOG_FILE)
        except LogError:
            return None  # no epoch finished yet

    def _files(self, log: TrainingLog | None, model_path: Path | None) -> list[Path]:
        names = ["config.yaml", "resolved.yaml", LOG_FILE]
        if log is not None and len(log) and _plot(self.run_dir, self.warn):
            names.append(PLOT_FILE)
        files = [self.run_dir / n for n in names if (self.run_dir / n).is_file()]
        if self.log_model and model_path is not None and model_path.is_file():
            files.append(model_path)
        return files

    def _save(self) -> None:
        for t in self.tracked:
            t.state.unsent = t.listed()
        self.record.save()


def _plot(run_dir: Path, warn: Callable[[str], None]) -> bool:
    from cbrun.plotting.figure import build_figure, save_figure
    from cbrun.plotting.inputs import all_families, load_run

    try:
        run = load_run(run_dir / LOG_FILE)
        save_figure(build_figure([run], all_families([run])), run_dir / PLOT_FILE)
    except Exception as exc:  # noqa: BLE001 - a figure for the trackers never costs the run
        text = str(exc) if isinstance(exc, CbrunError) else f"{type(exc).__name__}: {exc}"
        warn(f"warning: could not draw {PLOT_FILE} for the trackers: {text}")
        return False
    return True


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
