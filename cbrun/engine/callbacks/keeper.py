"""The Keras callback that keeps the run's state (cbrun/state/): puts a saved one back at the
start of a resumed run, and saves one at every epoch's end and, every `fit.state_every`
batches or minutes, inside an epoch, and at the batch where a stop is asked for (a signal,
the time limit), so that a resume continues from that very batch."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import keras

from cbrun.engine.callbacks.bound import Bound
from cbrun.state.capture import capture_state, restore_metrics, restore_state
from cbrun.state.files import FAULT_AT_BATCH_ENV, FAULT_PROCESS_ENV, SavedState
from cbrun.state.writer import StateWriter


def _fault_here() -> bool:
    """In a job of several processes the fault may name one of them (FAULT_PROCESS_ENV)."""
    wanted = os.environ.get(FAULT_PROCESS_ENV)
    return wanted is None or wanted == os.environ.get("CBRUN_PROCESS_ID")


class StateKeeper(keras.callbacks.Callback):
    """Restores a saved state after every other callback's on_train_begin has reset theirs,
    and saves the state at every epoch end, after every other callback has updated theirs,
    then run.json, so that run.json never claims an epoch the state does not hold.

    Inside an epoch it saves before a batch (every callback's hooks of the batches before
    it have run; Keras calls batch hooks in the main thread, between compiled steps): when
    `every_batches` batches or `every_seconds` seconds have passed since the last save, and
    when `stopping()` says the run stops here (SafeStop, after this callback, stops it at
    this very hook: the state is written first). `steps`: batches an epoch; `seekable`:
    whether the data can start inside an epoch (a loader's tf.data.Dataset cannot).
    `decide(epoch, done, due)`, in a job of several processes: (stop, save) as the
    processes agree before this batch (cbrun/engine/peers.Rounds), `due` being whether this
    process's clock says a state is due; every process then saves at the same batches."""

    def __init__(self, run_dir: Path, tracked: list[Bound], restore: SavedState | None,
                 extra_state, after_save, learning_rate: float | None = None,
                 on_restored=None, background: bool = True, *, steps: int = 0,
                 seekable: bool = False, every_batches: int | None = None,
                 every_seconds: float | None = None,
                 stopping: Callable[[], bool] = lambda: False,
                 decide: Callable[[int, int, bool], tuple[bool, bool]] | None = None):
        super().__init__()
        self.run_dir = run_dir
        self.tracked = tracked
        self.restore = restore
        self.extra_state = extra_state  # () -> dict, e.g. the run's best value so far
        # () -> (() -> None): called when the epoch ends, returns what writes run.json as
        # it was then, once the state is on disk (cbrun/state/writer.py)
        self.after_save = after_save
        self.learning_rate = learning_rate  # a --set on resume that replaces the saved rate
        self.on_restored = on_restored
        self.writer = StateWriter(background)
        self.steps, self.seekable = steps, seekable
        self.every_batches, self.every_seconds = every_batches, every_seconds
        self.stopping = stopping
        self.decide = decide or (lambda _epoch, _done, due: (stopping(), due))
        self.epoch = 0
        self.saved_at = (time.monotonic(), 0)  # (when, batches into the epoch)
        self.metrics_pending = restore is not None and restore.batches_done > 0
        # Tests stop the process right after a batch: "EPOCH:BATCH[:SIGNAL]" (0-based; the
        # signal defaults to SIGKILL), so where a run stops never depends on its speed.
        epoch, _, rest = os.environ.get(FAULT_AT_BATCH_ENV, "").partition(":")
        batch, _, name = rest.partition(":")
        self.fault = ((int(epoch), int(batch)), getattr(signal, name or "SIGKILL")) \
            if batch and _fault_here() else None

    def on_train_begin(self, logs=None):
        if self.restore is not None:
            restore_state(self.restore, self.model, self.tracked)
            if self.learning_rate is not None:
                self.model.optimizer.learning_rate = self.learning_rate
        if self.on_restored is not None:
            self.on_restored()
        self.saved_at = (time.monotonic(), self.restore.batches_done if self.restore else 0)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        if self.metrics_pending:
            # Keras reset the metrics as this epoch began; the state holds where they stood.
            restore_metrics(self.restore, self.model)
            self.metrics_pending = False

    def on_train_batch_begin(self, batch, logs=None):
        self._save_inside_epoch(batch)

    def on_train_batch_end(self, batch, logs=None):
        if self.fault is not None and self.fault[0] == (self.epoch, batch):
            # Once the writes in flight are done: where the state stands is then known, not
            # a race with the writer thread (kills inside a write have a fault of their own).
            self.writer.wait()
            os.kill(os.getpid(), self.fault[1])

    def _save_inside_epoch(self, batch: int) -> None:
        done = batch  # batches of this epoch trained so far
        if not self.seekable or done == 0:
            return  # at an epoch's start the epoch before it saved this very state
        when, at = self.saved_at
        stop, by_clock = self.decide(self.epoch, done, self.every_seconds is not None
                                     and time.monotonic() - when >= self.every_seconds)
        by_batches = self.every_batches is not None and done - at >= self.every_batches
        if stop or by_clock or by_batches:
            state = capture_state(self.model, self.tracked, self.epoch, self.extra_state(),
                                  batches_done=done)
            self.writer.save(self.run_dir, state, self.after_save())
            if stop:
                self.writer.wait()  # on disk before the run stops at this batch
            self.saved_at = (time.monotonic(), done)

    def on_epoch_end(self, epoch, logs=None):
        # Ctrl-C and SIGTERM only stop a run at safe points (cbrun/run/segment.py), none of
        # them in here; the run's end waits for the write in flight (cbrun/state/writer.py):
        # an interrupted run always holds the epoch it reports.
        state = capture_state(self.model, self.tracked, epoch + 1, self.extra_state())
        self.writer.save(self.run_dir, state, self.after_save())  # then run.json
        self.saved_at = (time.monotonic(), 0)

    def on_train_end(self, logs=None):
        # The last write is not waited for here: the session saves the model meanwhile and
        # then waits (`writer.close()`), before the run's end is recorded.
        pass
