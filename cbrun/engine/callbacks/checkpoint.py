"""ModelCheckpoint as cbrun builds it: Keras's, with every path it formats checked where it
is written. The template was checked up front, but a link planted in the run directory, or
a format no check foresaw, must still not put a file outside the run."""

from __future__ import annotations

from typing import Any

import keras

from cbrun.run.runguard import check_inside


class GuardedModelCheckpoint(keras.callbacks.ModelCheckpoint):
    def __init__(self, run_dir, **kwargs):
        super().__init__(**kwargs)
        self._run_dir = run_dir

    def _get_file_path(self, epoch, batch, logs):
        path = super()._get_file_path(epoch, batch, logs)
        return check_inside(self._run_dir, path, "ModelCheckpoint filepath")


# States and messages name Keras's class, as a saved state of an older run does.
GuardedModelCheckpoint.__name__ = "ModelCheckpoint"


def build(spec: Any, ctx: Any) -> GuardedModelCheckpoint:
    return GuardedModelCheckpoint(ctx.run_dir, **spec.arguments(ctx))
