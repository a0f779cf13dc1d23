"""The callback list of a run: the user's, built from their specs, plus cbrun's own.

Each callback travels with the spec it was built from, as a `Bound` pair: everything the
run does with a callback beyond handing it to Keras (its state, its messages, its stop) is
asked of its spec. See docs/ARCHITECTURE.md, "Adding a callback".

Order matters. Keras calls callbacks in list order, so:
  0. RunGuard before all: a link planted in the run directory while it trains is found
     before any callback writes through it;
  1. LearningRateLog first of the others: every later callback (CSVLogger, TensorBoard) sees
     `learning_rate`, the rate used during the epoch, before ReduceLROnPlateau changes it;
  2. the user's callbacks, in the order of the file;
  3. cbrun's log.csv writer (unless the user's CSVLogger already writes log.csv);
  4. the NaN guard, RunRecorder and the StateKeeper, after everything that changes state
     this epoch;
  5. the progress display, so it can report what the others did;
  6. SafeStop last: a Ctrl-C or SIGTERM stops the run at the next batch or epoch boundary,
     after the epoch's state is written when it came during that epoch's end.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import keras

from cbrun.callbacks.base import CallbackSpec
from cbrun.config.base import BuildContext
from cbrun.config.root import RunConfig
from cbrun.errors import ConfigError
from cbrun.record import RunRecord
from cbrun.runguard import check_tree
from cbrun.segment import stop_point
from cbrun.train.tfimport import collector_back


class Bound(NamedTuple):
    """A built Keras callback and the spec it came from."""

    spec: CallbackSpec
    callback: Any


class LearningRateLog(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.setdefault("learning_rate", float(
                keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))


class NanGuard(keras.callbacks.Callback):
    """Ends the run after an epoch whose logged loss is NaN or inf, whatever callbacks the
    config has: weights that produced it are no start for more epochs (the run is recorded
    `failed`, and resume refuses it)."""

    def __init__(self):
        super().__init__()
        self.epoch: int | None = None  # the 1-based epoch whose loss was not finite

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.epoch = epoch + 1
            self.model.stop_training = True


class RunGuard(keras.callbacks.Callback):
    """Checks the run directory for links before every hook where a callback or cbrun
    writes (runguard.py): first in the list, so before their writes. What is written only
    before training (the data source's `data/` and `cache/`) is checked, not walked."""

    def __init__(self, run_dir):
        super().__init__()
        self.run_dir = run_dir

    def _check(self, *_args, **_kwargs):
        check_tree(self.run_dir, shallow=("data", "cache"))

    on_train_begin = on_epoch_begin = on_test_begin = on_test_end = _check
    on_epoch_end = on_train_end = _check


class CollectorBack(keras.callbacks.Callback):
    """The garbage collector back on once the first epoch has built and traced what the run
    keeps (cbrun/train/tfimport.py holds it off until then in a `cbrun` process)."""

    def on_epoch_end(self, epoch, logs=None):
        collector_back()

    def on_train_end(self, logs=None):
        collector_back()


class SafeStop(keras.callbacks.Callback):
    """Where a recorded Ctrl-C or SIGTERM stops training (cbrun/segment.py): each hook runs
    in plain Python between compiled steps. Only `*_begin` hooks and epoch ends, which Keras
    always calls in the main thread (batch ends may be dispatched to a thread pool)."""

    def on_train_begin(self, logs=None):
        stop_point()

    def on_epoch_begin(self, epoch, logs=None):
        stop_point()

    def on_train_batch_begin(self, batch, logs=None):
        stop_point()

    def on_test_batch_begin(self, batch, logs=None):
        stop_point()

    def on_epoch_end(self, epoch, logs=None):
        stop_point()


class RunRecorder(keras.callbacks.Callback):
    """Tracks epochs done and the best monitored value in the run record (the StateKeeper
    writes run.json right after the epoch's state)."""

    def __init__(self, record: RunRecord, monitor: str, mode: str, judge: Bound | None = None):
        super().__init__()
        self.record = record
        self.monitor = monitor
        self.mode = mode
        # A callback whose own best of this metric is the run's best (EarlyStopping's,
        # min_delta and baseline counted: the epoch restore_best_weights brings back).
        self.judge = judge

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        best = self.record.best
        if self.judge is not None:
            judged = self.judge.spec.best(self.judge.callback)
            if judged is not None:
                best = {"epoch": judged[0], "value": judged[1]}
        elif value is not None and not math.isnan(float(value)):
            value = float(value)
            better = best is None or (value < best["value"] if self.mode == "min"
                                      else value > best["value"])
            if better:
                best = {"epoch": epoch + 1, "value": value}
        self.record.epoch_done(epoch + 1, best)


def build_callbacks(config: RunConfig, ctx: BuildContext) -> list[Bound]:
    """Every tracked callback (`RunConfig.tracked_callbacks`), built."""
    built = []
    for index, spec in enumerate(config.tracked_callbacks()):
        try:
            built.append(Bound(spec, spec.build(ctx)))
        except ConfigError as exc:
            for problem in exc.problems:
                problem.loc = ("callbacks", index, *problem.loc)
            raise
    return built


def every_batch(bound: list[Bound]) -> list[str]:
    """The callbacks that need every batch (a batch hook, a batch-level frequency)."""
    return [spec.type for spec, callback in bound if spec.batch_level(callback)]


def judge_of(bound: list[Bound], monitor: str) -> Bound | None:
    return next((pair for pair in bound if pair.spec.judges(monitor)), None)


def stopped_epoch(bound: list[Bound]) -> int | None:
    return next((epoch for spec, callback in bound
                 if (epoch := spec.stopped_epoch(callback)) is not None), None)
