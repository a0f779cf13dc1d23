"""A sweep trial's link to its Optuna study: each epoch's value is reported, and the
study's pruner decides whether the trial goes on (upper floor: a Keras callback).

Pruning stops training at the end of an epoch, after that epoch's state was saved; the run
then ends with status `pruned`. Only Optuna's public calls: the storage's, and the pruner's.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time

import keras

from cbrun.run.record import SweepTrial
from cbrun.sweep.study import (
    ATTEMPT_ENV,
    ID_ATTR,
    make_pruner,
    open_storage,
    storage_for_trial,
)


class SweepReporter(keras.callbacks.Callback):
    def __init__(self, info: SweepTrial):
        super().__init__()
        import optuna

        self.optuna = optuna
        self.metric = info.metric
        self.pruned_after: int | None = None
        self.storage = _storage(storage_for_trial(info.storage))
        # The study trial this process runs for: the trial's own, or the retry of it that
        # the sweep's worker runs now.
        number = int(os.environ.get(ATTEMPT_ENV) or info.trial)
        self.study, self.trial_id = None, None
        try:
            study = optuna.load_study(study_name=info.study, storage=self.storage,
                                      pruner=make_pruner(info.pruner))
            trial_id = self.storage.get_trial_id_from_study_id_trial_number(
                self.storage.get_study_id_from_name(info.study), number)
        except KeyError:
            self._not_reported(info, f"the study has no trial {number}")
            return
        if study.user_attrs.get(ID_ATTR) != info.id:
            self._not_reported(info, "the study in that storage is another sweep's")
            return
        if self.storage.get_trial(trial_id).state != optuna.trial.TrialState.RUNNING:
            self._not_reported(info, f"its trial {number} there has ended")
            return
        self.study, self.trial_id = study, trial_id
        if os.environ.get(ATTEMPT_ENV):  # started by a sweep worker: it ends with it
            _watch_parent()

    @staticmethod
    def _not_reported(info: SweepTrial, why: str) -> None:
        print(f"note: this run is trial {info.trial} of sweep {info.study!r}, but {why}; "
              f"its epochs are not reported to the study (cbrun sweep --resume "
              f"{info.sweep_dir} goes on with the sweep)", file=sys.stderr)

    def on_epoch_end(self, epoch, logs=None):
        if self.study is None:
            return
        value = (logs or {}).get(self.metric)
        if value is None or not math.isfinite(float(value)):
            return  # not logged this epoch (validation_freq), or NaN: nothing to compare
        try:
            # Epochs count from 1 in the study, as everywhere users see them.
            self.storage.set_trial_intermediate_value(self.trial_id, epoch + 1, float(value))
        except self.optuna.exceptions.UpdateFinishedTrialError:
            # The study failed this trial (its worker looked gone) and queued it again: the
            # run stops, interrupted, for the retry to resume it.
            os.kill(os.getpid(), signal.SIGTERM)
            self.study = None
            return
        if self.study.pruner.prune(self.study, self.storage.get_trial(self.trial_id)):
            self.pruned_after = epoch + 1
            self.model.stop_training = True


# The storages opened, by URL: a warm worker's trials share one. Opening a storage checks
# its tables against Optuna's schema versions (0.1-0.3 s, and 1-2 s of imports the first
# time); the storage holds no trial's state (each trial looks its study and trial up anew).
_STORAGES: dict[str, object] = {}


def _storage(url: str):
    if url not in _STORAGES:
        _STORAGES[url] = open_storage(url)
    return _STORAGES[url]


# The parents watched already: a warm worker's trials share one watcher (one thread for
# the process's life, not one more per trial).
_WATCHED: set[int] = set()


def _watch_parent() -> None:
    """A trial whose sweep worker is gone (kill -9 of that process alone) stops as if
    interrupted: the worker's heartbeats for it stopped too, so the study queues it again,
    and the retry resumes this run directory, which must not be in use by then."""
    parent = os.getppid()
    if parent in _WATCHED:
        return
    _WATCHED.add(parent)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True, name="cbrun-sweep-worker").start()
