"""The callback list of a run: the user's, built from their specs, plus cbrun's own.

Order matters. Keras calls callbacks in list order, so:
  1. LearningRateLog first: every later callback (CSVLogger, TensorBoard) sees
     `learning_rate`, the rate used during the epoch, before ReduceLROnPlateau changes it;
  2. the user's callbacks, in the order of the file;
  3. cbrun's log.csv writer (unless the user's CSVLogger already writes log.csv);
  4. RunRecorder and the StateKeeper, after everything that changes state this epoch;
  5. the progress display last, so it can report what the others did.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import keras

from cbrun.config.base import BuildContext
from cbrun.config.root import RunConfig
from cbrun.errors import ConfigError
from cbrun.rundir import LOG_FILE, RunRecord


class LearningRateLog(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.setdefault("learning_rate", float(
                keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))


class RunRecorder(keras.callbacks.Callback):
    """Tracks epochs done and the best monitored value in the run record (the StateKeeper
    writes run.json right after the epoch's state)."""

    def __init__(self, record: RunRecord, monitor: str, mode: str,
                 early_stopping: keras.callbacks.EarlyStopping | None = None):
        super().__init__()
        self.record = record
        self.monitor = monitor
        self.mode = mode
        # When EarlyStopping watches this metric, its best (min_delta and baseline counted)
        # is the run's best: the epoch whose weights restore_best_weights brings back.
        self.early_stopping = early_stopping

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        best = self.record.data.get("best")
        judge = self.early_stopping
        if judge is not None and judge.best is not None and math.isfinite(float(judge.best)):
            best = {"epoch": judge.best_epoch + 1, "value": float(judge.best)}
        elif judge is None and value is not None and not math.isnan(float(value)):
            value = float(value)
            better = best is None or (value < best["value"] if self.mode == "min"
                                      else value > best["value"])
            if better:
                best = {"epoch": epoch + 1, "value": value}
        self.record.epoch_done(epoch + 1, best)


def build_user_callbacks(config: RunConfig, ctx: BuildContext) -> list[Any]:
    built = []
    for index, spec in enumerate(config.callbacks):
        try:
            callback = spec.build(ctx)
        except ConfigError as exc:
            for problem in exc.problems:
                problem.loc = ("callbacks", index, *problem.loc)
            raise
        if ctx.resuming and isinstance(callback, keras.callbacks.CSVLogger):
            # The file was truncated to the restored epoch; rows continue after it.
            callback.append = True
        built.append(callback)
    return built


def needs_every_batch(config: RunConfig) -> bool:
    """Call after building: a Custom spec knows its class's hooks only once it is loaded."""
    return any(spec.batch_level() for spec in config.callbacks)


def run_log(run_dir: Path, resuming: bool) -> keras.callbacks.CSVLogger:
    return keras.callbacks.CSVLogger(str(run_dir / LOG_FILE), append=resuming)
