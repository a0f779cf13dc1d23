"""The training session's side of tracking: a Keras callback that hands each finished
epoch to the TrackingView (cbrun/tracking/view.py), which does the rest."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import keras

from cbrun.config.root import RunConfig
from cbrun.run.record import RunRecord
from cbrun.state.writer import StateWriter


class TrackingCallback(keras.callbacks.Callback):
    """Goes after the StateKeeper in the callback list: Keras calls callbacks in order, so
    an epoch reaches the view once its state is being written, and the trackers only once
    the writer (`follow`) has it and run.json on disk; at the training's end, after the
    keeper waited for its last write."""

    def __init__(self, config: RunConfig, run_dir: Path, record: RunRecord, first_epoch: int):
        super().__init__()
        self.view = None
        self.first_epoch = first_epoch
        if config.tracking is not None and (config.tracking.mlflow or config.tracking.wandb):
            from cbrun.tracking.params import flatten
            from cbrun.tracking.view import TrackingView

            params = flatten(config.model_dump(mode="json", by_alias=True))
            self.view = TrackingView(config.tracking, run_dir, record, params)

    def follow(self, writer: StateWriter) -> None:
        if self.view is not None:
            self.view.follow(writer)

    def on_train_begin(self, logs=None):
        # After the StateKeeper's on_train_begin: a resumed run's state is back in place.
        if self.view is not None:
            self.view.start(self.first_epoch)

    def on_train_batch_end(self, batch, logs=None):
        # An epoch held for its state write goes out once written, not an epoch later (a
        # long epoch's curve would lag by one): a look at a number, most batches.
        if self.view is not None:
            self.view.send_written()

    def on_epoch_end(self, epoch, logs=None):
        if self.view is not None:
            self.view.epoch(epoch + 1, _numbers(logs or {}))

    def on_train_end(self, logs=None):
        if self.view is not None:
            self.view.trained()

    def abort(self, status: str) -> None:
        if self.view is not None:
            self.view.abort(status)

    def finish(self, outcome: Any) -> Any:
        """Sends the finals once the session knows how the run ended; returns `outcome`."""
        if self.view is not None:
            self.view.finish(outcome.status, outcome.stopped_early_at, outcome.note,
                             outcome.model_path)
        return outcome


def _numbers(logs: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in logs.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if not math.isnan(number):
            out[key] = number
    return out
