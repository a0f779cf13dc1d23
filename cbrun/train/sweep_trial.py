"""A sweep trial's link to its Optuna study: each epoch's value is reported, and the
study's pruner decides whether the trial goes on (upper floor: a Keras callback).

Pruning stops training at the end of an epoch, after that epoch's state was saved; the run
then ends with status `pruned`.
"""

from __future__ import annotations

import math

import keras

from cbrun.record import SweepTrial
from cbrun.sweep.study import make_pruner, open_storage, storage_for_trial


class SweepReporter(keras.callbacks.Callback):
    def __init__(self, info: SweepTrial):
        super().__init__()
        import optuna

        self.metric = info.metric
        storage = open_storage(storage_for_trial(info.storage))
        study = optuna.load_study(study_name=info.study, storage=storage,
                                  pruner=make_pruner(info.pruner))
        trial_id = storage.get_trial_id_from_study_id_trial_number(study._study_id,
                                                                   info.trial)
        self.trial = optuna.trial.Trial(study, trial_id)
        self.pruned_after: int | None = None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.metric)
        if value is None or not math.isfinite(float(value)):
            return  # not logged this epoch (validation_freq), or NaN: nothing to compare
        # Epochs count from 1 in the study, as everywhere users see them.
        self.trial.report(float(value), step=epoch + 1)
        if self.trial.should_prune():
            self.pruned_after = epoch + 1
            self.model.stop_training = True
