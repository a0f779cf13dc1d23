"""Long runs on machines that go away: a run killed at any batch (inside an epoch, at its
first or last batch, in the first or the last epoch) resumes to exactly the uninterrupted
run: log.csv byte for byte, TensorBoard's scalars, the final weights bit for bit, with
EarlyStopping, ReduceLROnPlateau, a learning-rate schedule and Dropout; arrays and a
streamed image folder. SIGTERM saves the state at the next batch and exits 75; the time
limit does the same; `train --resume-if-exists` trains, then resumes, then does nothing.

The kills come from inside the process at a chosen batch (CBRUN_FAULT_KILL_AT_BATCH), so
where a run stops never depends on the machine's speed."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import pytest
from conftest import HANG_S, cbrun_process, cli, only_run, tb_scalars, tiny_config, write_config
from datafiles import image_config, write_images

from cbrun.state.files import FAULT_AT_BATCH_ENV, state_dirs, state_position

EPOCHS = 4
STEPS = 45  # digits: 1,437 training rows in batches of 32
# The arrays' run has EarlyStopping and a learning-rate schedule, the images' run
# ReduceLROnPlateau (cbrun refuses the two learning-rate callbacks together); both Dropout.
CALLBACKS = [
    {"type": "EarlyStopping", "monitor": "val_loss", "patience": 2, "min_delta": 0.001,
     "restore_best_weights": True},
    {"type": "LearningRateScheduler",
     "schedule": {"kind": "step", "initial": 0.01, "factor": 0.5, "every": 2}},
    {"type": "CSVLogger", "filename": "log.csv"},
    {"type": "TensorBoard", "log_dir": "tensorboard"},
]
PLATEAU = {"type": "ReduceLROnPlateau", "monitor": "val_loss", "factor": 0.5, "patience": 0,
           "min_delta": 0.05}
# (epoch, batch) after which the process is killed, 0-based, one for each way a resume can
# start: before any state (the first batch); from a state inside an epoch with epochs after
# it; from an epoch's end state, in the epoch where the schedule changes the rate; from a
# state inside the last epoch, the kill after its last batch (nothing left but the epoch's
# end). The streamed images: from a state inside a later epoch (its own order, skipped into).
ARRAY_KILLS = [(0, 0), (0, 23), (2, 1), (3, 44)]
IMAGE_KILLS = [(1, 4)]


def digits_config() -> dict:
    config = tiny_config(name="long", fit={"epochs": EPOCHS, "state_every": 7},
                         callbacks=CALLBACKS)
    config["data"]["batch_size"] = 32
    config["compile"]["steps_per_execution"] = 1  # hooks at every batch: kills anywhere
    return config


def image_run_config() -> dict:
    config = image_config("pics", {"path": "shapes", "validation_split": 0.25,
                                   "batch_size": 4}, epochs=3)
    config["fit"]["state_every"] = 2
    config["compile"]["steps_per_execution"] = 1
    config["callbacks"] = [PLATEAU, {"type": "CSVLogger", "filename": "log.csv"}]
    config["model"]["layers"].insert(3, {"type": "Dropout", "rate": 0.2})
    return config


def _train(path: Path, runs: Path, env: dict | None = None) -> tuple[int, str]:
    proc = cbrun_process("train", path, "--runs-dir", runs, "-q", env=env)
    _out, err = proc.communicate(timeout=HANG_S)
    return proc.returncode, err


def _resume(run: Path, *args: str) -> int:
    """In this process: what is resumed here is the saved state, not a process's end (cbrun
    starts each run from a clean Keras session; a process start and a TensorFlow import
    saved)."""
    return cli("resume", run, "-q", *args)


def _weights(run: Path) -> list[np.ndarray]:
    import keras

    return keras.saving.load_model(run / "model.keras").get_weights()


def _killed_and_resumed(config: Path, folder: Path, points: list[tuple[int, int]]) -> dict:
    """The uninterrupted run (`whole`), and one run killed after each point then resumed.
    The kills need processes of their own; the uninterrupted run trains in this process
    meanwhile, and the resumes follow here."""
    kills = {point: cbrun_process("train", config, "--runs-dir",
                                  folder / f"kill-{point[0]}-{point[1]}", "-q",
                                  env={FAULT_AT_BATCH_ENV: f"{point[0]}:{point[1]}"})
             for point in points}
    assert cli("train", config, "--runs-dir", folder / "whole", "-q") == 0
    killed = {}
    for point, proc in kills.items():
        _out, err = proc.communicate(timeout=HANG_S)
        assert proc.returncode == -signal.SIGKILL, (point, proc.returncode, err[-2000:])
        run = only_run(folder / f"kill-{point[0]}-{point[1]}")
        states = [state_position(p) for p in state_dirs(run)]
        assert _resume(run) == 0, point
        killed[point] = {"run": run, "states_at_kill": states}
    return {"whole": only_run(folder / "whole"), "killed": killed}


@pytest.fixture(scope="module")
def arrays(tmp_path_factory):
    folder = tmp_path_factory.mktemp("long-arrays")
    return _killed_and_resumed(write_config(folder, digits_config()), folder, ARRAY_KILLS)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("long-images")
    write_images(folder / "shapes", per_class=12)
    return _killed_and_resumed(write_config(folder, image_run_config()), folder, IMAGE_KILLS)


@pytest.mark.parametrize("point", ARRAY_KILLS, ids=lambda p: f"epoch{p[0]}-batch{p[1]}")
def test_a_run_killed_at_any_batch_resumes_to_the_uninterrupted_run(arrays, point):
    whole, resumed = arrays["whole"], arrays["killed"][point]["run"]
    assert (resumed / "log.csv").read_bytes() == (whole / "log.csv").read_bytes()
    for a, b in zip(_weights(whole), _weights(resumed), strict=True):
        np.testing.assert_array_equal(a, b)
    scalars = {k: v for k, v in tb_scalars(whole / "tensorboard").items()
               if k[1].startswith("epoch_")}
    assert scalars and {k: v for k, v in tb_scalars(resumed / "tensorboard").items()
                        if k[1].startswith("epoch_")} == scalars


def test_the_kills_left_states_inside_epochs_to_resume_from(arrays):
    """The points were not all epoch ends in disguise: the runs killed inside an epoch past
    its first 7 batches were resumed from a state saved inside it (every 7 batches)."""
    newest = {p: found["states_at_kill"][0] if found["states_at_kill"] else None
              for p, found in arrays["killed"].items()}
    # Saved every 7 batches and at every epoch's end; the kill after batch b.
    assert newest == {(0, 0): None, (0, 23): (0, 21), (2, 1): (2, 0), (3, 44): (3, 42)}


@pytest.mark.parametrize("point", IMAGE_KILLS, ids=lambda p: f"epoch{p[0]}-batch{p[1]}")
def test_a_streamed_image_folder_resumes_inside_an_epoch_exactly(images, point):
    whole, resumed = images["whole"], images["killed"][point]["run"]
    assert images["killed"][point]["states_at_kill"][0][1] > 0  # from inside the epoch
    assert (resumed / "log.csv").read_bytes() == (whole / "log.csv").read_bytes()
    for a, b in zip(_weights(whole), _weights(resumed), strict=True):
        np.testing.assert_array_equal(a, b)


def test_sigterm_saves_the_state_at_the_next_batch_and_exits_75(arrays, tmp_path):
    """SIGTERM arrives after batch 20 of epoch 2 has trained: the run saves its state
    before batch 21 and stops there, exit 75 (EX_TEMPFAIL: requeue me); resume equals the
    uninterrupted run."""
    config = write_config(tmp_path, {**digits_config(), "fit": {"epochs": EPOCHS,
                                                                "state_every": None}})
    code, err = _train(config, tmp_path / "runs", env={FAULT_AT_BATCH_ENV: "1:20:SIGTERM"})
    assert code == 75, err[-3000:]
    run = only_run(tmp_path / "runs")
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "interrupted" and record["epochs_done"] == 1
    assert state_position(state_dirs(run)[0]) == (1, 21)
    assert "after 1 complete epoch and 21 batches of epoch 2" in err
    assert _resume(run) == 0
    assert (run / "log.csv").read_bytes() == (arrays["whole"] / "log.csv").read_bytes()


def test_a_time_limit_ends_the_run_at_a_batch_and_resume_finishes_it(tmp_path):
    """A hook that sleeps 5 ms a batch makes the run last longer than its 2 s limit on any
    machine: it stops at a batch, exit 75, interrupted by the time limit; a resume with
    more time ends as the run without a limit ends."""
    (tmp_path / "slow.py").write_text("import time\n\n\ndef pause(batch, logs):\n"
                                      "    time.sleep(0.005)\n")
    config = digits_config()
    config["callbacks"] = [{"type": "LambdaCallback", "on_train_batch_end": "slow:pause"}]
    config["fit"] = {"epochs": 3, "state_every": None}
    assert cli("train", write_config(tmp_path, config, "plain.yaml"), "--runs-dir",
               tmp_path / "plain", "-q") == 0
    config["fit"]["max_time"] = "2s"
    code, err = _train(write_config(tmp_path, config, "limited.yaml"), tmp_path / "limited")
    assert code == 75, err[-3000:]
    run = only_run(tmp_path / "limited")
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "interrupted" and "the time limit" in record["error"]
    assert "interrupted by the time limit after" in err
    assert _resume(run, "--set", "fit.max_time=1h") == 0
    assert (run / "log.csv").read_bytes() == (only_run(tmp_path / "plain") /
                                               "log.csv").read_bytes()


def test_one_command_line_trains_resumes_and_then_does_nothing(tmp_path, capsys):
    config = digits_config()
    config["fit"] = {"epochs": 2, "state_every": None}
    path = write_config(tmp_path, config)
    line = ["train", path, "--runs-dir", tmp_path / "runs", "--resume-if-exists", "exp1",
            "-q"]
    proc = cbrun_process(*line, env={FAULT_AT_BATCH_ENV: "1:10:SIGTERM"})
    _out, err = proc.communicate(timeout=HANG_S)
    assert proc.returncode == 75, err[-3000:]
    run = tmp_path / "runs" / "exp1"
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"
    assert cli(*line) == 0  # the same line resumes it
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed"
    assert [s["kind"] for s in record["segments"]] == ["train", "resume"]
    capsys.readouterr()
    assert cli(*line) == 0  # and once it has ended, does nothing
    assert "has already ended (completed); nothing to do" in capsys.readouterr().err
    assert len(json.loads((run / "run.json").read_text())["segments"]) == 2
    other = write_config(tmp_path, {**config, "seed": 8}, "other.yaml")
    assert cli("train", other, "--runs-dir", tmp_path / "runs", "--resume-if-exists",
               "exp1") == 2
    assert "was started from another config" in capsys.readouterr().err
