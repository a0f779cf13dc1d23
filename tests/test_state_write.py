"""The state written off the training thread: a kill during that write leaves the previous
state whole and the run resumes exactly; what is written is the epoch's end, not what
training has moved on to."""

from __future__ import annotations

import json
import signal

import numpy as np
from conftest import HANG_S, cbrun_process, cli, only_run, tiny_config, write_config

from cbrun.state.files import FAULT_ENV, state_problem


def test_a_kill_during_the_background_write_leaves_the_previous_state_and_resumes_exactly(
        tmp_path):
    path = write_config(tmp_path, tiny_config(fit={"epochs": 4}))
    # Killed by the writer thread itself, halfway through epoch 3's files: a process of its
    # own. The uninterrupted run trains in this process meanwhile, and the resume follows
    # here (cbrun starts each run from a clean Keras session; a TensorFlow import saved).
    proc = cbrun_process("train", path, "--runs-dir", tmp_path / "killed", "-q",
                         env={FAULT_ENV: "3"})
    assert cli("train", path, "--runs-dir", tmp_path / "whole", "-q") == 0
    _out, err = proc.communicate(timeout=HANG_S)
    assert proc.returncode == -signal.SIGKILL, err[-3000:]
    run_dir = only_run(tmp_path / "killed")
    states = sorted(p.name for p in (run_dir / "state").iterdir())
    assert "epoch-00002" in states and "epoch-00003" not in states, states
    assert state_problem(run_dir / "state" / "epoch-00002") is None
    assert json.loads((run_dir / "run.json").read_text())["epochs_done"] == 2
    assert cli("resume", run_dir, "-q") == 0
    assert ((run_dir / "log.csv").read_bytes()
            == (only_run(tmp_path / "whole") / "log.csv").read_bytes())


def test_the_state_written_is_the_one_captured_at_the_epoch_end(tmp_path):
    import keras

    from cbrun.state.capture import capture_state
    from cbrun.state.writer import StateWriter

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model.optimizer.build(model.trainable_variables)
    kernel = model.layers[0].kernel
    kernel.assign(np.ones((3, 2), "float32"))
    state = capture_state(model, [], 1, {"best": None})
    kernel.assign(np.full((3, 2), 7.0, "float32"))  # training moved on before the write
    written = []
    writer = StateWriter()
    writer.save(tmp_path, state, lambda: written.append(True))
    writer.close()
    assert written == [True]  # run.json's turn came after the state was in place
    folder = tmp_path / "state" / "epoch-00001"
    assert state_problem(folder) is None
    with np.load(folder / "variables.npz") as data:
        np.testing.assert_array_equal(data["m0"], np.ones((3, 2), "float32"))


def test_a_failed_background_write_fails_the_run_when_waited_for(tmp_path):
    import keras

    from cbrun.state.capture import capture_state
    from cbrun.state.writer import StateWriter

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model.optimizer.build(model.trainable_variables)
    (tmp_path / "state").write_text("a file where the state folder goes")
    writer = StateWriter()
    writer.save(tmp_path, capture_state(model, [], 1, {}), lambda: None)
    try:
        writer.close()
    except OSError:
        pass
    else:
        raise AssertionError("the write's failure was lost")


def test_the_end_of_training_leaves_the_last_write_to_the_session(tmp_path):
    """The StateKeeper's on_train_end does not wait for the last epoch's write: the session
    saves model.keras meanwhile, then waits for it (engine/session.py) before the run's end
    is recorded. A write that cannot finish until released shows which waits."""
    import threading

    from cbrun.engine.callbacks.keeper import StateKeeper
    from cbrun.state.files import CapturedState

    release = threading.Event()
    keeper = StateKeeper(tmp_path, [], None, extra_state=dict, after_save=lambda: None)
    state = CapturedState(1, {"m0": np.zeros(3)}, {}, {"epochs_done": 1})
    # Released below; the bound only ends the test if on_train_end waited (it then finds
    # the write done and fails).
    keeper.writer.save(tmp_path, state, lambda: release.wait(60))
    keeper.on_train_end()
    in_flight = keeper.writer._thread is not None and keeper.writer._thread.is_alive()
    release.set()
    keeper.writer.close()
    assert in_flight, "on_train_end waited for the last state's write"
    assert state_problem(tmp_path / "state" / "epoch-00001") is None
