"""Custom callbacks the tests load through `type: Custom` (this folder is the config dir)."""

import json
from pathlib import Path

import keras


class StatusProbe(keras.callbacks.Callback):
    """Records run.json's status as seen from inside training, after each epoch."""

    def __init__(self, runs_dir: str, out: str):
        super().__init__()
        self.runs_dir = Path(runs_dir)
        self.out = Path(out)

    def on_epoch_end(self, epoch, logs=None):
        (run_json,) = self.runs_dir.glob("*/run.json")
        status = json.loads(run_json.read_text())["status"]
        with self.out.open("a") as handle:
            handle.write(status + "\n")


class Crash(keras.callbacks.Callback):
    """A user bug: raises at the end of the given epoch (0-based)."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError(f"user callback failed at epoch {epoch}")
