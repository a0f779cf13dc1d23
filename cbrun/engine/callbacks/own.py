"""cbrun's own Keras callbacks around the user's: the learning-rate column, the NaN guard,
the link check while training, the garbage collector's return, the safe stop at a signal,
and the run record's epochs and best value. Their order in the list: __init__.py."""

from __future__ import annotations

import math

import keras

from cbrun.engine.callbacks.bound import Bound
from cbrun.engine.tfimport import collector_back
from cbrun.run.record import RunRecord
from cbrun.run.runguard import check_tree
from cbrun.run.segment import agreed_stop_point, stop_point


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

    def __init__(self, run_dir, shallow: tuple[str, ...] = ("data", "cache")):
        super().__init__()
        self.run_dir = run_dir
        self.shallow = shallow

    def _check(self, *_args, **_kwargs):
        check_tree(self.run_dir, shallow=self.shallow)

    on_train_begin = on_epoch_begin = on_test_begin = on_test_end = _check
    on_epoch_end = on_train_end = _check


class CollectorBack(keras.callbacks.Callback):
    """The garbage collector back on once the first epoch has built and traced what the run
    keeps (cbrun/engine/tfimport.py holds it off until then in a `cbrun` process)."""

    def on_epoch_end(self, epoch, logs=None):
        collector_back()

    def on_train_end(self, logs=None):
        collector_back()


class SafeStop(keras.callbacks.Callback):
    """Where a recorded Ctrl-C or SIGTERM stops training (cbrun/run/segment.py): each hook runs
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


class AgreedStop(keras.callbacks.Callback):
    """SafeStop for a job of several processes: a stop is agreed at epoch ends, after the
    epoch's state is saved, and inside epochs in the rounds the StateKeeper holds before a
    batch (`rounds.reason`, once agreed: the state is saved at that batch first), and taken
    by all processes together (cbrun/engine/peers.py)."""

    def __init__(self, agree, rounds):
        super().__init__()
        self.agree, self.rounds = agree, rounds

    def on_train_batch_begin(self, batch, logs=None):
        if self.rounds.reason is not None:
            agreed_stop_point(lambda _mine: self.rounds.reason)

    def on_epoch_end(self, epoch, logs=None):
        agreed_stop_point(lambda mine: self.agree(epoch, mine))


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


