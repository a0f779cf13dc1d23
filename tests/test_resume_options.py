"""`cbrun resume` options: extending a finished run, going past an early stop, --set."""

from __future__ import annotations

import json

from conftest import cli, only_run, read_log, tiny_config, write_config


def _train(tmp_path, name, **config):
    path = write_config(tmp_path / name, tiny_config(**config))
    assert cli("train", path, "--runs-dir", tmp_path / name / "runs", "-q") == 0
    return only_run(tmp_path / name / "runs")


def test_epochs_extends_a_completed_run_to_what_a_longer_run_gives(tmp_path, capsys):
    short = _train(tmp_path, "short", fit={"epochs": 3})
    long = _train(tmp_path, "long", fit={"epochs": 5})
    assert cli("resume", short) == 2  # completed: refused without --epochs
    assert "--epochs" in capsys.readouterr().err
    assert cli("resume", short, "--epochs", "5", "-q") == 0
    assert "fit.epochs: 3 -> 5" in capsys.readouterr().err
    # The data order is a function of (seed, epoch): 3 + 2 epochs equal 5 epochs.
    assert read_log(short / "log.csv") == read_log(long / "log.csv")
    record = json.loads((short / "run.json").read_text())
    assert record["epochs_planned"] == 5 and record["status"] == "completed"
    assert [(s["kind"], s["first_epoch"], s["last_epoch"]) for s in record["segments"]] == [
        ("train", 1, 3), ("resume", 4, 5)]


def test_continue_after_early_stop_trains_on_only_when_asked(tmp_path, capsys):
    callbacks = [{"type": "EarlyStopping", "monitor": "val_loss", "patience": 0,
                  "min_delta": 0.5}]
    run = _train(tmp_path, "es", fit={"epochs": 8}, callbacks=callbacks)
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "stopped_early"
    stopped = record["epochs_done"]
    assert cli("resume", run) == 2
    assert "--continue-after-early-stop" in capsys.readouterr().err
    assert cli("resume", run, "--continue-after-early-stop", "--set",
               "callbacks.EarlyStopping.patience=100", "-q") == 0
    assert "callbacks[0].patience: 0 -> 100" in capsys.readouterr().err
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed" and record["epochs_done"] == 8 > stopped
    assert [int(r["epoch"]) for r in read_log(run / "log.csv")] == list(range(8))


def test_set_cannot_change_the_model_on_resume(tmp_path, capsys):
    run = _train(tmp_path, "frozen", fit={"epochs": 2})
    record = json.loads((run / "run.json").read_text())
    record["status"] = "interrupted"
    (run / "run.json").write_text(json.dumps(record))
    assert cli("resume", run, "--set", "model.layers[1].units=64") == 2
    err = capsys.readouterr().err
    assert "model.layers[1].units" in err and "saved weights" in err
    assert "Traceback" not in err
