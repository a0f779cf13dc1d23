"""The Keras callback that keeps the run's state (cbrun/state/): puts a saved one back at the
start of a resumed run, and saves one at every epoch's end."""

from __future__ import annotations

from pathlib import Path

import keras

from cbrun.engine.callbacks.bound import Bound
from cbrun.state.capture import capture_state, restore_state
from cbrun.state.files import SavedState
from cbrun.state.writer import StateWriter


class StateKeeper(keras.callbacks.Callback):
    """Restores a saved state after every other callback's on_train_begin has reset theirs,
    and saves the state at every epoch end, after every other callback has updated theirs,
    then run.json, so that run.json never claims an epoch the state does not hold."""

    def __init__(self, run_dir: Path, tracked: list[Bound], restore: SavedState | None,
                 extra_state, after_save, learning_rate: float | None = None,
                 on_restored=None, background: bool = True):
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

    def on_train_begin(self, logs=None):
        if self.restore is not None:
            restore_state(self.restore, self.model, self.tracked)
            if self.learning_rate is not None:
                self.model.optimizer.learning_rate = self.learning_rate
        if self.on_restored is not None:
            self.on_restored()

    def on_epoch_end(self, epoch, logs=None):
        # Ctrl-C and SIGTERM only stop a run at safe points (cbrun/run/segment.py), none of them
        # in here; the run's end waits for the write in flight (cbrun/state/writer.py): an
        # interrupted run always holds the epoch it reports.
        state = capture_state(self.model, self.tracked, epoch + 1, self.extra_state())
        self.writer.save(self.run_dir, state, self.after_save())  # then run.json

    def on_train_end(self, logs=None):
        self.writer.close()


