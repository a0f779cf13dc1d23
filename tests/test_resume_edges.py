"""Resume at the edges: refused changes, locks, damaged state, no state, NaN, bad data."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import yaml
from conftest import (
    HANG_S,
    HELPERS,
    REPO,
    cli,
    only_run,
    read_log,
    tb_scalars,
    tiny_config,
    write_config,
)


def _interrupted_run(tmp_path, epochs=4, **config):
    """A real run, then marked as a Ctrl-C would have left it."""
    path = write_config(tmp_path, tiny_config(fit={"epochs": epochs}, **config))
    assert cli("train", path, "--runs-dir", tmp_path / "runs", "-q") == 0
    run = only_run(tmp_path / "runs")
    record = json.loads((run / "run.json").read_text())
    record["status"] = "interrupted"
    (run / "run.json").write_text(json.dumps(record))
    return run


def _snapshot(run):
    return {p.relative_to(run): p.read_bytes() for p in sorted(run.rglob("*"))
            if p.is_file() and p.name != ".lock"}


def test_refused_overrides_change_nothing_on_disk(tmp_path, capsys):
    run = _interrupted_run(tmp_path, callbacks=[{"type": "TerminateOnNaN"},
                                                {"type": "CSVLogger", "filename": "log.csv"}])
    before = _snapshot(run)
    for setting, fragment in [
        ("compile.optimizer.type=SGD", "optimizer"),
        ("callbacks[0]={type: EarlyStopping, monitor: val_loss}", "callbacks"),
        ("callbacks[1].filename=other.csv", "which CSVLogger writes log.csv"),
        ("fit.epochs=2", "4 epochs are already done"),
        ("seed=1", "random states"),
    ]:
        assert cli("resume", run, "--set", setting) == 2, setting
        err = capsys.readouterr().err
        assert fragment in err and "Traceback" not in err, err
    assert _snapshot(run) == before  # resolved.yaml, run.json, log.csv, state: untouched


def test_a_learning_rate_set_on_resume_is_the_rate_that_trains(tmp_path, capsys):
    run = _interrupted_run(tmp_path, epochs=2)
    assert cli("resume", run, "--epochs", "4", "--set",
               "compile.optimizer.learning_rate=0.002", "-q") == 0
    assert "compile.optimizer.learning_rate: 0.01 -> 0.002" in capsys.readouterr().err
    rates = [float(r["learning_rate"]) for r in read_log(run / "log.csv")]
    np.testing.assert_allclose(rates, [0.01, 0.01, 0.002, 0.002], rtol=1e-6)
    resolved = yaml.safe_load((run / "resolved.yaml").read_text())
    assert resolved["compile"]["optimizer"]["learning_rate"] == 0.002


def test_a_callback_that_stops_training_is_an_early_stop_not_a_failure(tmp_path):
    shutil.copy(HELPERS.parent.parent / "configs" / "sample_callbacks.py", tmp_path)
    config = tiny_config(fit={"epochs": 6}, callbacks=[
        {"type": "TerminateOnNaN"},
        {"type": "Custom", "class": "sample_callbacks:StopAtTarget",
         "params": {"monitor": "val_accuracy", "target": 0.5}}])
    assert cli("train", write_config(tmp_path, config), "--runs-dir", tmp_path / "r",
               "-q") == 0
    record = json.loads((only_run(tmp_path / "r") / "run.json").read_text())
    assert record["status"] == "stopped_early" and record["epochs_done"] < 6
    assert "NaN" not in (record["stop_reason"] or "")


def test_a_run_in_use_is_refused_and_a_stale_pid_then_blocks_nothing(tmp_path, capsys):
    """The lock decides, not run.json's pid: a second resume of a run whose lock is held is
    refused; once it is free, a run that kill -9 left "running" under a pid that now belongs
    to some other live process resumes."""
    run = _interrupted_run(tmp_path, epochs=2)
    fd = os.open(run / ".lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # what a running `cbrun resume` holds
    try:
        assert cli("resume", run) == 1, "a run whose lock is held was resumed"
        assert "in use by another cbrun process" in capsys.readouterr().err
    finally:
        os.close(fd)
    record = json.loads((run / "run.json").read_text())
    record.update(status="running", pid=os.getpid())  # this live process's pid
    (run / "run.json").write_text(json.dumps(record))
    assert cli("resume", run, "--epochs", "3", "-q") == 0, "a stale pid blocked the resume"
    assert json.loads((run / "run.json").read_text())["epochs_done"] == 3


def test_a_damaged_newest_state_falls_back_to_the_spare_and_stays_exact(tmp_path, capsys):
    crash = {"type": "Custom", "class": "probe_callbacks:Crash", "params": {"epoch": 2}}
    shutil.copy(HELPERS / "probe_callbacks.py", tmp_path)
    config = tiny_config(fit={"epochs": 5}, callbacks=[crash])
    assert cli("train", write_config(tmp_path, config), "--runs-dir", tmp_path / "a") == 1
    run = only_run(tmp_path / "a")
    assert json.loads((run / "run.json").read_text())["status"] == "failed"
    newest = run / "state" / "epoch-00002" / "variables.npz"
    newest.write_bytes(newest.read_bytes()[:100])  # a disk that lost the end of the file
    assert cli("resume", run, "--set", "callbacks[0].params.epoch=99", "-q") == 0
    assert "epoch-00002 is damaged" in capsys.readouterr().err

    config["callbacks"][0]["params"]["epoch"] = 99
    assert cli("train", write_config(tmp_path, config, "b.yaml"), "--runs-dir",
               tmp_path / "b", "-q") == 0
    assert read_log(run / "log.csv") == read_log(only_run(tmp_path / "b") / "log.csv")


def test_no_saved_state_restarts_from_epoch_one_without_duplicate_tensorboard_steps(tmp_path,
                                                                                     capsys):
    tb = [{"type": "TensorBoard", "log_dir": "tb", "update_freq": "batch"}]
    run = _interrupted_run(tmp_path, epochs=2, callbacks=tb)
    shutil.rmtree(run / "state")  # as if killed inside epoch 1, before any state was saved
    assert cli("resume", run, "-q") == 0
    assert "no saved state" in capsys.readouterr().err
    for (_, tag), points in tb_scalars(run / "tb").items():
        steps = [step for step, _ in points]
        assert len(steps) == len(set(steps)), (tag, steps)
    assert len(read_log(run / "log.csv")) == 2


def test_a_run_that_failed_on_nan_is_not_resumed(tmp_path, capsys):
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    x[5, 2] = np.nan
    np.savez(tmp_path / "nan.npz", x=x, y=(x[:, 0] > 0).astype("float32"))
    config = tiny_config(
        data={"source": "npz", "path": "nan.npz", "batch_size": 8},
        model={"input_shape": [4], "layers": [{"type": "Dense", "units": 1,
                                               "activation": "sigmoid"}]},
        compile={"optimizer": "adam", "loss": "binary_crossentropy"},
        callbacks=[{"type": "TerminateOnNaN"}])
    assert cli("train", write_config(tmp_path, config), "--runs-dir", tmp_path / "r") == 1
    run = only_run(tmp_path / "r")
    assert json.loads((run / "run.json").read_text())["status"] == "failed"
    assert cli("resume", run) == 2
    assert "NaN" in capsys.readouterr().err


def test_data_that_does_not_fit_the_model_is_a_config_error(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "narrow.npz", x=rng.normal(size=(40, 32)), y=rng.integers(0, 10, 40))
    config = tiny_config(data={"source": "npz", "path": "narrow.npz"})
    path = write_config(tmp_path, config)
    assert cli("train", path, "--runs-dir", tmp_path / "r") == 2
    err = capsys.readouterr().err
    assert "shape [32]" in err and "input_shape [64]" in err and "Traceback" not in err
    # Found from the .npz header, before a run directory (or its folder) is made.
    assert not (tmp_path / "r").exists()

    config = tiny_config()
    config["compile"]["loss"] = "categorical_crossentropy"  # the classic tutorial slip
    assert cli("train", write_config(tmp_path, config, "cce.yaml"), "--runs-dir",
               tmp_path / "r") == 2
    err = capsys.readouterr().err
    assert "sparse_categorical_crossentropy" in err and "compile.loss" in err


def test_checkpoints_written_into_the_run_directory_are_reported_alone(tmp_path, capsys):
    config = tiny_config(fit={"epochs": 2}, callbacks=[
        {"type": "ModelCheckpoint", "filepath": "ck.keras"}])
    assert cli("train", write_config(tmp_path, config), "--runs-dir", tmp_path / "r") == 0
    events = [ln for ln in capsys.readouterr().out.splitlines() if "checkpoint written" in ln]
    assert events == ["  > checkpoint written: ck.keras"] * 2


def test_sigint_during_the_tensorflow_import_is_a_clean_interruption(tmp_path):
    path = write_config(tmp_path, tiny_config())
    # The process sends itself the SIGINT as TensorFlow's import begins.
    proc = subprocess.Popen(
        [sys.executable, str(HELPERS / "signal_at_import.py"), "SIGINT", "train", str(path),
         "--runs-dir", str(tmp_path / "r"), "-q"], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    _, err = proc.communicate(timeout=HANG_S)
    run = only_run(tmp_path / "r")
    record = json.loads((run / "run.json").read_text())
    assert proc.returncode == 130
    assert record["status"] == "interrupted" and record["segments"][0]["status"] == "interrupted"
    assert f"cbrun resume {run}" in err and "Traceback" not in err
    assert cli("resume", run, "-q") == 0


def test_batch_level_tensorboard_steps_continue_after_a_resume(tmp_path):
    # TensorBoard's batch counter is part of the saved state: 2 + 1 epochs give the
    # per-batch curve of 3 epochs, each step once and in order, the first two kept.
    tb = [{"type": "TensorBoard", "log_dir": "tb", "update_freq": "batch"}]
    run = _interrupted_run(tmp_path, epochs=2, callbacks=tb)
    before = [step for step, _ in tb_scalars(run / "tb")[("train", "batch_loss")]]
    per_epoch = len(before) // 2
    assert before == list(range(1, 2 * per_epoch + 1)) and per_epoch > 1, before
    assert cli("resume", run, "--epochs", "3", "-q") == 0
    after = [step for step, _ in tb_scalars(run / "tb")[("train", "batch_loss")]]
    assert after == list(range(1, 3 * per_epoch + 1)), after


def test_rewinding_a_finished_runs_tensorboard_counts_nothing_dropped(real_run, tmp_path):
    """Resuming a finished run (--epochs more): nothing was written past its last state, so
    nothing is reported dropped; only the model summary goes, which the resume rewrites."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    from cbrun.callbacks.tensorboard_trim import trim_event_files

    folder = shutil.copytree(real_run / "tensorboard", tmp_path / "tensorboard")
    epochs = len(read_log(real_run / "log.csv"))

    def tags():
        return sorted(v.tag for p in folder.rglob("events.out.tfevents.*")
                      for e in EventFileLoader(str(p)).Load() for v in e.summary.value)

    before = tags()
    assert trim_event_files(folder, epochs, 10**9, 10**9) == 0
    after = tags()
    assert before.count("keras") == 1 and "keras" not in after
    assert len(after) == len(before) - 1
    # One epoch back, the last epoch's scalars count as dropped.
    assert trim_event_files(folder, epochs - 1, 10**9, 10**9) > 0
