"""The progress display: one line per epoch, events as they happen, a summary, and a live
view that renders at a bounded rate however many batches go by."""

from __future__ import annotations

import io
import time

from conftest import cli, tiny_config, write_config
from rich.console import Console

from cbrun.engine.progress import REFRESH_PER_SECOND, epoch_line


def test_epoch_line_puts_loss_first_and_learning_rate_last():
    line = epoch_line(2, 30, {"val_accuracy": 0.91, "accuracy": 0.9, "learning_rate": 0.001,
                              "val_loss": 0.3, "loss": 0.25}, 1.24)
    assert line.startswith("epoch  3/30  loss 0.2500  accuracy 0.9000  val_loss 0.3000  "
                           "val_accuracy 0.9100  lr 0.001  ")
    assert line.endswith("1.2s[/dim]")


def test_plain_output_reports_every_epoch_and_every_event(tmp_path, capsys):
    callbacks = [
        {"type": "EarlyStopping", "monitor": "val_loss", "patience": 1, "min_delta": 0.05,
         "restore_best_weights": True},
        {"type": "ReduceLROnPlateau", "monitor": "val_loss", "factor": 0.5, "patience": 0,
         "min_delta": 0.08},
        {"type": "ModelCheckpoint", "filepath": "checkpoints/best.keras", "monitor": "val_loss",
         "save_best_only": True},
    ]
    path = write_config(tmp_path, tiny_config(fit={"epochs": 12}, callbacks=callbacks))
    assert cli("train", path, "--runs-dir", tmp_path / "runs") == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    epochs = [ln for ln in lines if ln.startswith("epoch ")]
    assert epochs[0].startswith("epoch  1/12  loss ") and " lr 0.01 " in epochs[0]
    assert "> checkpoint written: checkpoints/best.keras" in out
    # ReduceLROnPlateau cuts the rate at the epoch EarlyStopping ends the run: no epoch of
    # this run uses it, only one a resume adds.
    assert "> learning rate 0.01 -> 0.005 for epochs a resume adds" in out
    assert "> EarlyStopping ended the run at epoch" in out and "restored" in out
    assert "status" in out and "stopped_early" in out and "best val_loss" in out
    assert "\x1b[" not in out, "not a terminal: no escape codes"


def test_live_view_renders_at_a_bounded_rate_not_per_batch(tmp_path):
    from cbrun.config.load import load_config
    from cbrun.engine.session import train
    from cbrun.run.handle import OpenRun
    from cbrun.run.record import RunRecord

    class CountingFile(io.StringIO):
        writes = 0

        def write(self, text):
            CountingFile.writes += 1
            return super().write(text)

    # 1,437 samples in batches of 8: 180 batches per epoch, each seen by the display.
    config = tiny_config(fit={"epochs": 2})
    config["data"]["batch_size"] = 8
    config["compile"]["steps_per_execution"] = 1
    loaded = load_config(write_config(tmp_path, config))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    record = RunRecord.new(run_dir, "tiny", 7, 2, ("val_loss", "min"), ["test"],
                           config_dir=run_dir, overrides=[])
    record.begin_segment("train", 1, ["test"])
    console = Console(file=CountingFile(), force_terminal=True, width=100)
    started = time.perf_counter()
    outcome = train(OpenRun(run_dir, record, loaded.config), console=console, live=True)
    seconds = time.perf_counter() - started
    assert outcome.status == "completed"
    text = console.file.getvalue()
    assert "epoch 1/2" in text and "epoch 2/2" in text
    assert "batches" in text and "epochs" in text, "the live bars were drawn"
    # The display writes at its refresh rate (4 a second, a write or two each), plus the
    # epoch lines, however many batches there are: measured against this run's own time
    # (15 writes here; 360 batches), never against a speed assumed of the machine.
    most = 2 * (REFRESH_PER_SECOND * seconds + 2) + 10
    assert CountingFile.writes <= most, ("the display must not write once per batch",
                                         CountingFile.writes, seconds)
