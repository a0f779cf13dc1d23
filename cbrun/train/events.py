"""What happened during an epoch that a user wants to hear about: the learning rate changed,
a checkpoint was written, early stopping ended the run, a NaN loss stopped it."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import keras


def _lr(model: keras.Model) -> float:
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


class Events:
    def __init__(self, run_dir: Path, callbacks: list[keras.callbacks.Callback]):
        self.run_dir = run_dir
        self.callbacks = callbacks
        # A checkpoint template names the files to watch: `ep{epoch:03d}.keras` -> `ep*.keras`.
        # Only those, so a checkpoint written into the run directory itself does not make
        # log.csv or run.json look like new checkpoints.
        self.watch = sorted({(Path(cb.filepath).parent,
                              re.sub(r"\{[^}]*\}", "*", Path(cb.filepath).name))
                             for cb in callbacks
                             if isinstance(cb, keras.callbacks.ModelCheckpoint)})
        self._files: dict[Path, int] = {}
        self.early_stop: str | None = None
        self.nan_stop = False

    def _snapshot(self) -> dict[Path, int]:
        found = {}
        for folder, pattern in self.watch:
            if folder.is_dir():
                for item in folder.glob(pattern):
                    try:
                        found[item] = item.stat().st_mtime_ns
                    except FileNotFoundError:
                        continue  # replaced while we looked
        return found

    def start(self) -> None:
        self._files = self._snapshot()

    def after_epoch(self, model: keras.Model, epoch: int, logs: dict[str, Any]) -> list[str]:
        lines = []
        used = logs.get("learning_rate")
        now = _lr(model)
        if used is not None and not _close(float(used), now):
            lines.append(f"learning rate {float(used):.3g} -> {now:.3g} from epoch {epoch + 2}")
        files = self._snapshot()
        for path, stamp in sorted(files.items()):
            if self._files.get(path) != stamp:
                lines.append(f"checkpoint written: {_rel(path, self.run_dir)}")
        self._files = files
        if model.stop_training:
            for cb in self.callbacks:
                if isinstance(cb, keras.callbacks.EarlyStopping) and cb.stopped_epoch == epoch:
                    self.early_stop = (
                        f"EarlyStopping ended the run at epoch {epoch + 1}: {cb.monitor} did "
                        f"not improve for {cb.wait} epochs (best {cb.best:.4g} at epoch "
                        f"{cb.best_epoch + 1})")
                    if cb.restore_best_weights and cb.best_weights is not None:
                        self.early_stop += f"; weights of epoch {cb.best_epoch + 1} restored"
                    lines.append(self.early_stop)
            loss = logs.get("loss")
            if self.early_stop is None and loss is not None and not math.isfinite(float(loss)):
                self.nan_stop = True
                lines.append("the loss became NaN or inf and training was stopped")
        return lines


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-12 + 1e-6 * abs(b)


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
