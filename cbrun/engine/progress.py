"""The progress display: epoch and batch bars, one line per epoch, events, at a bounded rate.

rich renders the bars from its own refresh thread (4 times a second); a batch only bumps a
counter, so the display costs the training loop almost nothing however short the steps.
"""

from __future__ import annotations

import math
import time
from typing import Any

import keras
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cbrun.engine.events import Events

REFRESH_PER_SECOND = 4


def fmt_value(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.3e}"
        return f"{value:.4f}"
    return str(value)


def epoch_line(epoch: int, epochs: int, logs: dict[str, Any], seconds: float) -> str:
    """'epoch  3/30  loss 0.2345  accuracy 0.9312  val_loss ...  lr 0.001  0.1s'."""
    def order(key: str) -> tuple[bool, bool, bool, str]:
        return (key.startswith("learning_rate"), key.startswith("val_"),
                key.removeprefix("val_") != "loss", key)

    def show(key: str) -> str:
        value = float(logs[key])
        if key.startswith("learning_rate"):  # rates read best as 0.001, 5e-05
            return f"{key.replace('learning_rate', 'lr')} {value:.3g}"
        return f"{key} {fmt_value(value)}"

    parts = [show(k) for k in sorted(logs, key=order)]
    return (f"epoch {epoch + 1:>{len(str(epochs))}}/{epochs}  " + "  ".join(parts)
            + f"  [dim]{seconds:.1f}s[/dim]")


class ProgressDisplay(keras.callbacks.Callback):
    """Draws progress; placed last so it sees what every other callback did this epoch."""

    def __init__(self, console: Console, epochs: int, steps_per_epoch: int, events: Events,
                 live: bool):
        super().__init__()
        # Tell Keras we do not need logs as numpy every batch (that would force a sync).
        self._supports_tf_logs = True
        self.console = console
        self.epochs = epochs
        self.steps = steps_per_epoch
        self.events = events
        self.live = live
        self._progress: Progress | None = None
        self._epoch_task = None
        self._batch_task = None
        self._epoch_started = 0.0

    def on_train_begin(self, logs=None):
        self.events.start()
        if not self.live:
            return
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=self.console, transient=True,
            refresh_per_second=REFRESH_PER_SECOND)
        self._progress.start()
        self._epoch_task = self._progress.add_task("epochs", total=self.epochs)
        self._batch_task = self._progress.add_task("batches", total=self.steps)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_started = time.perf_counter()
        if self._progress is not None:
            self._progress.update(self._epoch_task, completed=epoch)
            self._progress.reset(self._batch_task, total=self.steps)

    def on_train_batch_end(self, batch, logs=None):
        if self._progress is not None:
            self._progress.update(self._batch_task, completed=batch + 1)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        seconds = time.perf_counter() - self._epoch_started
        self.console.print(epoch_line(epoch, self.epochs, logs, seconds),
                           highlight=False, soft_wrap=True)
        for line in self.events.after_epoch(self.model, epoch, logs, self.epochs):
            self.console.print(f"  [cyan]>[/cyan] {line}", highlight=False, soft_wrap=True)
        if self._progress is not None:
            self._progress.update(self._epoch_task, completed=epoch + 1)

    def on_train_end(self, logs=None):
        self.close()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

