"""ModelCheckpoint as cbrun builds it: Keras's, with every path it formats checked where it
is written, and cbrun's retention (keep_best / keep_last) applied right after each save.

The template was checked up front, but a link planted in the run directory, or a format no
check foresaw, must still not put a file outside the run. What retention keeps and what
waits to be deleted is `Retention` (cbrun/callbacks/model_checkpoint.py): its record is
part of the callback's saved state, so a resumed run goes on counting the same files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import keras

from cbrun.callbacks.model_checkpoint import Retention
from cbrun.run.runguard import check_inside
from cbrun.state.files import state_dirs, state_epoch


class GuardedModelCheckpoint(keras.callbacks.ModelCheckpoint):
    def __init__(self, run_dir, keep_best: int | None = None, keep_last: int | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        self._run_dir = run_dir
        self.retention = (None if keep_best is None and keep_last is None else
                          Retention(run_dir, keep_best, keep_last, self.monitor))
        self._saving: str | None = None

    def _get_file_path(self, epoch, batch, logs):
        path = super()._get_file_path(epoch, batch, logs)
        return check_inside(self._run_dir, path, "ModelCheckpoint filepath")

    # Keras's _save_model formats the path, asks _should_save_model, then saves: the one
    # place that knows a file was written, and which.
    def _should_save_model(self, epoch, batch, logs, filepath):
        save = super()._should_save_model(epoch, batch, logs, filepath)
        self._saving = filepath if save else None
        return save

    def _save_model(self, epoch, batch, logs):
        self._saving = None
        super()._save_model(epoch, batch, logs)
        if self.retention is None or self._saving is None:
            return
        if self.monitor_op is None:  # a save every N batches, before the first epoch's end
            self._set_monitor_op()
        file = Path(os.path.relpath(self._saving, self._run_dir)).as_posix()
        # monitor_op is Keras's own reading of `mode` (auto resolved), the rule
        # save_best_only saved by.
        lower = bool(self.monitor_op(0.0, 1.0))
        self.retention.wrote(file, epoch + 1, (logs or {}).get(self.monitor), lower)
        self.retention.delete(epoch + 1, _oldest_state(self._run_dir))

    def on_train_end(self, logs=None):
        if self.retention is not None:
            self.retention.delete(None, None)


def _oldest_state(run_dir: Path) -> int | None:
    return min((state_epoch(path) for path in state_dirs(Path(run_dir))), default=None)


# States and messages name Keras's class, as a saved state of an older run does.
GuardedModelCheckpoint.__name__ = "ModelCheckpoint"


def build(spec: Any, ctx: Any) -> GuardedModelCheckpoint:
    return GuardedModelCheckpoint(ctx.run_dir, keep_best=spec.keep_best,
                                  keep_last=spec.keep_last, **spec.arguments(ctx))
