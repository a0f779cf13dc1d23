"""`cbrun train` end to end with real TensorFlow: the run directory a user gets."""

from __future__ import annotations

import json
import math
import shutil
import threading
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import (
    HANG_S,
    HELPERS,
    REPO,
    cli,
    cli_output,
    only_run,
    read_log,
    tb_scalars,
    tiny_config,
    write_config,
)

from cbrun.run.rundir import create_run_dir
from tests.helpers.light import run_cbrun


def test_run_directory_holds_every_file(real_run):
    names = {p.name for p in real_run.iterdir()}
    assert {"config.yaml", "resolved.yaml", "run.json", "log.csv", "checkpoints",
            "tensorboard", "state", "model.keras"} <= names
    original = (real_run.parent.parent / "run.yaml").read_bytes()
    assert (real_run / "config.yaml").read_bytes() == original

    resolved = yaml.safe_load((real_run / "resolved.yaml").read_text())
    early = resolved["callbacks"][0]
    # Defaults the user never wrote are filled in: this is what really ran.
    assert early["start_from_epoch"] == 0 and early["mode"] == "auto"
    assert early["baseline"] is None and resolved["callbacks"][1]["save_freq"] == "epoch"
    assert resolved["data"]["shuffle"] is True

    record = json.loads((real_run / "run.json").read_text())
    # Seeded and deterministic: this config always stops early, and says who stopped it.
    assert record["status"] == "stopped_early"
    assert record["stop_reason"] == "early_stopping"
    assert record["stop_note"].startswith(
        f"EarlyStopping ended the run at epoch {record['stopped_early_at']}: val_loss did not "
        "improve for ")
    assert record["id"] == real_run.name and real_run.name.endswith("-real")
    assert record["epochs_done"] == len(read_log(real_run / "log.csv"))
    assert set(record["versions"]) == {"python", "tensorflow", "keras", "cbrun"}
    assert record["versions"]["keras"].startswith("3.")
    assert record["seed"] == 7 and record["finished"] is not None
    assert record["segments"][0]["kind"] == "train"


def test_log_has_a_row_per_epoch_and_learning_rate_follows_reduce_lr(real_run):
    rows = read_log(real_run / "log.csv")
    record = json.loads((real_run / "run.json").read_text())
    assert [int(r["epoch"]) for r in rows] == list(range(record["epochs_done"]))
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"} <= set(rows[0])

    # Replay ReduceLROnPlateau(factor 0.5, patience 0, min_delta 0.02) on the logged val_loss:
    # the learning_rate column must show exactly those cuts, one epoch after each.
    lr, best, expected = 0.01, math.inf, []
    for row in rows:
        expected.append(lr)
        val_loss = float(row["val_loss"])
        if val_loss < best - 0.02:
            best = val_loss
        else:
            lr *= 0.5
    logged = [float(r["learning_rate"]) for r in rows]
    np.testing.assert_allclose(logged, expected, rtol=1e-6)
    assert min(logged) < 0.01, "the test config should make ReduceLROnPlateau cut at least once"


def test_tensorboard_events_hold_the_epoch_scalars(real_run):
    rows = read_log(real_run / "log.csv")
    scalars = tb_scalars(real_run / "tensorboard")
    for subdir, tag, column in [("train", "epoch_loss", "loss"),
                                ("train", "epoch_accuracy", "accuracy"),
                                ("train", "epoch_learning_rate", "learning_rate"),
                                ("validation", "epoch_loss", "val_loss")]:
        points = scalars[(subdir, tag)]
        assert [step for step, _ in points] == list(range(len(rows)))
        np.testing.assert_allclose([v for _, v in points],
                                   [float(r[column]) for r in rows], rtol=1e-6)


def test_tensorboard_histograms_are_those_of_the_weights_each_epoch(real_run):
    """histogram_freq: 1: every weight's histogram at every epoch, under Keras's tags, and at
    the best epoch equal to TensorBoard's own numpy histogram of the checkpoint's weights."""
    import keras
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.plugins.histogram.summary_v2 import histogram_pb
    from tensorboard.util import tensor_util

    written: dict[tuple[str, int], np.ndarray] = {}
    for path in (real_run / "tensorboard" / "train").glob("events.out.tfevents.*"):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "histograms":
                    written[(value.tag, event.step)] = tensor_util.make_ndarray(value.tensor)
    rows = read_log(real_run / "log.csv")
    best_row = min(rows, key=lambda r: float(r["val_loss"]))
    epoch = int(best_row["epoch"])
    (best,) = (real_run / "checkpoints").glob(f"ep{epoch + 1:03d}-*.keras")
    model = keras.saving.load_model(best)
    # Keras's tags: the variable's path while training, under the model's name.
    weights = {f"{model.name}/{w.path}/histogram": w
               for layer in model.layers for w in layer.weights}
    assert set(weights) == {tag for tag, _ in written} and len(weights) == 4
    assert {step for _, step in written} == set(range(len(rows)))
    for tag, weight in weights.items():
        expected = tensor_util.make_ndarray(
            histogram_pb("t", keras.ops.convert_to_numpy(weight)).value[0].tensor)
        got = written[(tag, epoch)]
        np.testing.assert_array_equal(got[:, 2], expected[:, 2])
        np.testing.assert_allclose(got[:, :2], expected[:, :2], rtol=1e-12)


def test_best_checkpoint_reloads_and_evaluates_to_the_logged_value(real_run):
    import keras

    from cbrun.config.data import DigitsData
    from cbrun.engine.sources import load_splits

    rows = read_log(real_run / "log.csv")
    best_row = min(rows, key=lambda r: float(r["val_loss"]))
    epoch = int(best_row["epoch"]) + 1
    (best,) = [p for p in (real_run / "checkpoints").iterdir()
               if p.name.startswith(f"ep{epoch:03d}-")]
    assert best.name == f"ep{epoch:03d}-val_loss{float(best_row['val_loss']):.4f}.keras"
    model = keras.saving.load_model(best)
    arrays = load_splits(DigitsData(validation_split=0.2), real_run, seed=7)  # the run's seed
    loss, _ = model.evaluate(arrays.validation.x, arrays.validation.y, batch_size=64, verbose=0)
    assert loss == pytest.approx(float(best_row["val_loss"]), rel=1e-5)


def test_final_model_has_the_restored_best_weights(real_run):
    import keras

    record = json.loads((real_run / "run.json").read_text())
    assert record["status"] == "stopped_early", "the fixture's config stops early"
    assert record["stopped_early_at"] < record["epochs_planned"]
    # EarlyStopping(min_delta=0.03) counts only improvements of at least 0.03 as progress,
    # so its best epoch is found by replaying that rule on the log.
    best_value, best_epoch = math.inf, None
    for row in read_log(real_run / "log.csv"):
        if float(row["val_loss"]) < best_value - 0.03:
            best_value, best_epoch = float(row["val_loss"]), int(row["epoch"]) + 1
    final = keras.saving.load_model(real_run / "model.keras")
    (best,) = (real_run / "checkpoints").glob(f"ep{best_epoch:03d}-*.keras")
    for a, b in zip(final.get_weights(), keras.saving.load_model(best).get_weights(),
                    strict=True):
        np.testing.assert_array_equal(a, b)


def test_status_is_running_during_training_then_completed(tmp_path):
    probe = tmp_path / "seen.txt"
    config = tiny_config(fit={"epochs": 2}, callbacks=[{
        "type": "Custom", "class": "probe_callbacks:StatusProbe",
        "params": {"runs_dir": str(tmp_path / "runs"), "out": str(probe)}}])
    shutil.copy(HELPERS / "probe_callbacks.py", tmp_path)
    path = write_config(tmp_path, config)
    assert cli("train", path, "--runs-dir", tmp_path / "runs", "--quiet") == 0
    assert probe.read_text().split() == ["running", "running"]
    run = only_run(tmp_path / "runs")
    assert json.loads((run / "run.json").read_text())["status"] == "completed"


def test_a_crash_in_user_code_marks_the_run_failed(tmp_path, capsys):
    config = tiny_config(fit={"epochs": 3}, callbacks=[{
        "type": "Custom", "class": "probe_callbacks:Crash", "params": {"epoch": 1}}])
    shutil.copy(HELPERS / "probe_callbacks.py", tmp_path)
    code = cli("train", write_config(tmp_path, config), "--runs-dir", tmp_path / "runs")
    assert code == 1
    record = json.loads((only_run(tmp_path / "runs") / "run.json").read_text())
    assert record["status"] == "failed" and "user callback failed" in record["error"]
    assert record["epochs_done"] == 1
    # A bug (here, the user's) keeps its traceback.
    assert "Traceback" in capsys.readouterr().err


def test_keras_refusing_a_layer_value_is_a_config_error_before_training(tmp_path, capsys):
    config = tiny_config()
    # Valid on its own, so only Keras can tell: a 2-D convolution of a flat 64-vector.
    config["model"]["layers"][1] = {"type": "Conv2D", "filters": 4, "kernel_size": 3}
    path = write_config(tmp_path, config)
    assert cli("validate", path) == 0
    assert cli("train", path, "--runs-dir", tmp_path / "runs") == 2
    err = capsys.readouterr().err
    assert "model.layers[1]" in err and "Conv2D" in err and "Traceback" not in err
    assert f"{path}:" in err  # a position in the file
    assert not any((tmp_path / "runs").iterdir()), "nothing trained, nothing left behind"


def test_two_runs_started_in_the_same_second_get_different_directories(tmp_path):
    now = datetime(2026, 11, 21, 15, 30, 12, tzinfo=UTC)
    made = []
    threads = [threading.Thread(target=lambda: made.append(create_run_dir(tmp_path, "x", now)))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({p.name for p in made}) == 8
    assert min(p.name for p in made) == "20261121-153012-x"


def test_help_does_not_import_tensorflow():
    result = run_cbrun(["--help"])
    assert "Commands:" in result.commands[0].out and result.heavy == []


@pytest.mark.parametrize("config_file", sorted(p.name for p in (REPO / "configs").glob("*.yaml")))
def test_every_example_config_trains(config_file, tmp_path):
    if config_file == "mnist.yaml":
        import os

        home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
        if not (home / "datasets" / "mnist.npz").is_file():
            pytest.skip(f"MNIST is not in Keras's cache here ({home}/datasets/mnist.npz)")
    assert cli("train", REPO / "configs" / config_file, "--set", "fit.epochs=2",
               "--runs-dir", tmp_path, "--quiet") == 0
    run = only_run(tmp_path)
    assert json.loads((run / "run.json").read_text())["status"] in ("completed",
                                                                     "stopped_early")
    assert len(read_log(run / "log.csv")) >= 1


def test_steps_per_execution_auto_trains_exactly_like_one_batch_per_call(tmp_path, capsys):
    """Several batches per compiled call (fewer Python round trips) leave the curves as
    they are, to the bit; `auto` picks a divisor of the epoch's batches and says which. How
    many it picks depends on the machine's speed (the pure rule is tested below), so the
    several-batch run is given its number."""
    logs = []
    for spe in ("auto", "5", "1"):
        path = write_config(tmp_path / spe, tiny_config(fit={"epochs": 3}))
        # 1,437 samples in batches of 32: 45 batches an epoch.
        result = cli_output(capsys, "train", path, "--set",
                            f"compile.steps_per_execution={spe}", "--set",
                            "data.batch_size=32", "--runs-dir", tmp_path / spe / "runs")
        assert result.code == 0
        run = only_run(tmp_path / spe / "runs")
        logs.append((run / "log.csv").read_bytes())
        picked = json.loads((run / "run.json").read_text())["steps_per_execution"]
        assert 45 % picked == 0 if spe == "auto" else picked == int(spe)
        said = f"steps_per_execution auto: {picked} batch"
        assert (said in result.out) == (spe == "auto"), result.out
    assert logs[0] == logs[1] == logs[2]


def test_auto_steps_per_execution_divides_the_epoch_and_respects_batch_callbacks():
    from cbrun.config.load import load_config
    from cbrun.engine.session import choose_steps_per_execution
    from cbrun.errors import ConfigError

    config = load_config(REPO / "configs" / "digits.yaml").config
    assert choose_steps_per_execution(config, 45, []) == 5  # 9 calls an epoch
    assert choose_steps_per_execution(config, 47, []) == 1  # 47 is prime
    assert choose_steps_per_execution(config, 45, ["TensorBoard"]) == 1
    # With a step's time measured: ~0.25 s a call, up to the whole epoch.
    assert choose_steps_per_execution(config, 45, [], step_seconds=0.001) == 45
    assert choose_steps_per_execution(config, 45, [], step_seconds=0.05) == 5
    assert choose_steps_per_execution(config, 45, [], step_seconds=0.1) == 1  # no divisor 2
    assert choose_steps_per_execution(config, 64, [], step_seconds=0.1) == 2
    # A prime epoch (103 batches) whose whole call takes 0.26 s runs in one call, not 103;
    # where that call would take 2 s, one batch a call.
    assert choose_steps_per_execution(config, 103, [], step_seconds=0.0025) == 103
    assert choose_steps_per_execution(config, 26, [], step_seconds=0.02) == 13
    assert choose_steps_per_execution(config, 103, [], step_seconds=0.02) == 1
    assert choose_steps_per_execution(config, 45, ["LambdaCallback"], step_seconds=0.001) == 1
    # A number is taken as given, except where a callback needs every batch.
    config.compile.steps_per_execution = 5
    assert choose_steps_per_execution(config, 45, ["distribute: one_device"]) == 5
    with pytest.raises(ConfigError, match="LambdaCallback needs every batch"):
        choose_steps_per_execution(config, 45, ["LambdaCallback"])
    with pytest.raises(ConfigError, match=r"divisors: \[1, 2, 4, 8, 16, 32, 64\]"):
        choose_steps_per_execution(config, 64, [])


def test_auto_steps_per_execution_does_not_count_the_waits_of_a_busy_machine():
    """A forward pass that waits without computing (as a process waits for a core on a
    loaded machine) is not taken for a slow step: the estimate counts the work done."""
    import time

    import keras

    from cbrun.engine.pacing import step_seconds
    from cbrun.engine.sources import Split

    class Waits(keras.layers.Layer):
        def call(self, x):
            rows = x.shape[0] or 1
            time.sleep(0.002 * rows)  # 64 ms for a batch of 32, 2 ms for one sample
            return x

    model = keras.Sequential([keras.Input((4,)), Waits(), keras.layers.Dense(2)])
    split = Split(x=np.zeros((64, 4), np.float32), y=np.zeros(64, np.int32))
    # Counted by the wall clock alone: 3 x (64 - 2) ms = 0.186 s a step.
    assert step_seconds(model, split, 32) < 0.05


def test_a_reader_that_stops_reading_does_not_stop_the_run(tmp_path):
    """`cbrun train x.yaml | head -2`: the display goes quiet, the run finishes."""
    from conftest import cbrun_process

    path = write_config(tmp_path, tiny_config(fit={"epochs": 3}))
    proc = cbrun_process("train", path, "--runs-dir", tmp_path / "runs")
    assert proc.stdout.readline().startswith("run directory:")
    proc.stdout.close()  # the reader is gone before the first epoch line
    proc.wait(timeout=HANG_S)
    assert proc.returncode == 0, proc.stderr.read()
    record = json.loads((only_run(tmp_path / "runs") / "run.json").read_text())
    assert record["status"] == "completed" and record["epochs_done"] == 3
