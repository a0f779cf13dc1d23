"""Ctrl-C and SIGTERM at any instant end a training process with 130 or 75 and an
`interrupted` run, never a crash or a traceback, and resume then ends exactly like the
uninterrupted run.

The instants are random over a whole run's life (the TensorFlow import, loading, the model
build and its first traced step, epochs, state writes), drawn from how long the
uninterrupted run took. The handlers only record a signal; the run stops at the next safe
point (cbrun/run/segment.py), so no instant is special: a sample of instants over each part of
the run's life (and its two ends, fixed) checks that, not a count of them. Cost: 12
TensorFlow processes, run a few at a time."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from pathlib import Path

import pytest
from conftest import (
    HANG_S,
    HELPERS,
    REPO,
    cbrun_process,
    cli,
    only_run,
    read_log,
    tiny_config,
    write_config,
)

RUNS = 8  # half between the start and the first state: the import, loading, build, first step
RESUMED = 3  # a sample, spread over where the runs stopped
EPOCHS = 4
CODES = {signal.SIGTERM: 75, signal.SIGINT: 130}  # SIGTERM: EX_TEMPFAIL, requeue me


def _wait_for(pattern: str, root: Path, proc) -> float:
    deadline = time.monotonic() + HANG_S  # only a hang
    while not list(root.glob(pattern)):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"no {pattern} under {root}"
        time.sleep(0.005)
    return time.monotonic()


def _state_epochs(run: Path) -> list[int]:
    """The whole epochs a run's states hold; a state taken inside an epoch on a signal
    (`epoch-00002-0000021`, epoch 2 at batch 21) is not one."""
    return sorted(int(p.name.removeprefix("epoch-")) for p in (run / "state").glob("epoch-*")
                  if p.name.removeprefix("epoch-").isdigit())


# Where a signal's instant is measured from, and until which milestone of the uninterrupted
# run its delay may reach: the import, loading, model build and first step; then epochs.
MILESTONES = ["*/run.json", "*/state/epoch-00001", "*/state/epoch-00002", "*/model.keras"]


@pytest.fixture(scope="module")
def storm(tmp_path_factory):
    root = tmp_path_factory.mktemp("signals")
    config = write_config(root, tiny_config(fit={"epochs": EPOCHS}))
    proc = cbrun_process("train", config, "--runs-dir", root / "baseline", "-q")
    seen = [_wait_for(pattern, root / "baseline", proc) for pattern in MILESTONES]
    _out, err = proc.communicate(timeout=HANG_S)
    assert proc.returncode == 0, err[-3000:]
    gaps = [later - earlier for earlier, later in pairwise(seen)]

    rng = random.Random(1010)
    plans = []
    for i in range(RUNS):
        start = 0 if i < RUNS // 2 else rng.randrange(1, len(gaps))
        plans.append((i, MILESTONES[start], rng.uniform(0, gaps[start]),
                      rng.choice(list(CODES))))
    # The ends of the range, whatever the machine's speed: inside the TensorFlow import
    # (no epoch done), and once epoch 2's state is saved. The random instants fall between.
    plans[0] = (0, None, 0.0, signal.SIGINT)
    plans[-1] = (RUNS - 1, MILESTONES[2], 0.0, signal.SIGTERM)

    def interrupt(plan):
        i, milestone, delay, sig = plan
        if milestone is None:
            proc = subprocess.Popen(
                [sys.executable, str(HELPERS / "signal_at_import.py"), sig.name, "train",
                 str(config), "--runs-dir", str(root / f"r{i}"), "-q"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONFAULTHANDLER": "1"})
            _out, err = proc.communicate(timeout=HANG_S)
            return i, f"{sig.name} inside the TensorFlow import", sig, proc.returncode, err
        proc = cbrun_process("train", config, "--runs-dir", root / f"r{i}", "-q",
                             env={"PYTHONFAULTHANDLER": "1"})
        _wait_for(milestone, root / f"r{i}", proc)
        time.sleep(delay)
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=HANG_S)
        return i, f"{sig.name} {delay:.2f}s after {milestone}", sig, proc.returncode, err

    with ThreadPoolExecutor(4) as pool:
        ended = list(pool.map(interrupt, plans))
    records = {i: json.loads((only_run(root / f"r{i}") / "run.json").read_text())
               for i in range(RUNS)}
    states = {i: _state_epochs(only_run(root / f"r{i}")) for i in range(RUNS)}
    rows = {i: len(read_log(log)) if (log := only_run(root / f"r{i}") / "log.csv").exists()
            else 0 for i in range(RUNS)}
    debris = {i: [p.name for p in only_run(root / f"r{i}").glob("state/.tmp-*")]
              for i in range(RUNS)}

    # Resume a sample spread over how far the runs got, the earliest and latest included.
    by_progress = sorted(range(RUNS), key=lambda i: (records[i]["epochs_done"], i))
    sample = sorted({by_progress[round(k * (RUNS - 1) / (RESUMED - 1))]
                     for k in range(RESUMED)})
    # In processes, together: on two cores the three overlap, where in this process they
    # would follow one another (tried: the file took longer, for little processor time).
    resumes = {i: cbrun_process("resume", only_run(root / f"r{i}"), "-q") for i in sample}
    resumed = {i: (p.communicate(timeout=HANG_S), p.returncode) for i, p in resumes.items()}
    return {"root": root, "ended": ended, "records": records, "states": states,
            "rows": rows, "debris": debris, "resumed": resumed}


def test_every_signal_ends_the_run_interrupted_with_its_exit_code(storm):
    for i, what, sig, code, err in storm["ended"]:
        assert code == CODES[sig], (what, code, err[-3000:])
        assert "Traceback" not in err and "Fatal Python error" not in err, (what, err)
        assert "error_already_set" not in err, (what, err)
        record = storm["records"][i]
        assert record["status"] == "interrupted", (what, record)
        assert f"cbrun resume {only_run(storm['root'] / f'r{i}')}" in err, (what, err)


def test_an_interrupted_run_claims_exactly_the_epochs_its_state_and_log_hold(storm):
    for i in range(RUNS):
        done = storm["records"][i]["epochs_done"]
        assert done == (storm["states"][i] or [0])[-1], (i, done, storm["states"][i])
        assert storm["rows"][i] == done, (i, done, storm["rows"][i])
        # No temporary state folder is left: a signal never stops a state write halfway.
        assert storm["debris"][i] == [], i


def test_the_instants_cover_the_import_and_the_epochs(storm):
    done = [storm["records"][i]["epochs_done"] for i in range(RUNS)]
    assert 0 in done and max(done) >= 2, done


def test_resume_after_any_instant_ends_exactly_like_the_uninterrupted_run(storm):
    baseline = (only_run(storm["root"] / "baseline") / "log.csv").read_bytes()
    assert len(storm["resumed"]) >= RESUMED - 1
    for i, ((_out, err), code) in storm["resumed"].items():
        assert code == 0, (i, err[-3000:])
        run = only_run(storm["root"] / f"r{i}")
        assert (run / "log.csv").read_bytes() == baseline, i
        assert json.loads((run / "run.json").read_text())["status"] == "completed"


def test_a_second_signal_stops_at_once_even_inside_the_tensorflow_import(tmp_path):
    """The first SIGTERM waits for the import to finish (a safe point); a second one ends the
    process there and then, with run.json saying so and the run resumable."""
    path = write_config(tmp_path, tiny_config(fit={"epochs": 2}))
    proc = subprocess.Popen(
        [sys.executable, str(HELPERS / "signal_at_import.py"), "SIGTERM,SIGINT", "train",
         str(path), "--runs-dir", str(tmp_path / "runs"), "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONFAULTHANDLER": "1"})
    _out, err = proc.communicate(timeout=HANG_S)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "Fatal Python error" not in err
    assert "second Ctrl-C: stopped at once after 0 complete epochs" in err
    run = only_run(tmp_path / "runs")
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "interrupted" and record["epochs_done"] == 0
    assert "a second one" in record["error"]
    assert cli("resume", run, "-q") == 0
    assert len(read_log(run / "log.csv")) == 2


def test_a_signal_inside_the_state_write_lets_it_finish_and_stops_after_that_epoch(tmp_path):
    path = write_config(tmp_path, tiny_config(fit={"epochs": 4}))
    proc = cbrun_process("train", path, "--runs-dir", tmp_path / "runs", "-q",
                         env={"CBRUN_FAULT_KILL_IN_STATE_WRITE": "2:SIGTERM"})
    _out, err = proc.communicate(timeout=HANG_S)
    assert proc.returncode == 75, err[-3000:]
    run = only_run(tmp_path / "runs")
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "interrupted" and record["epochs_done"] == 2
    assert _state_epochs(run) == [1, 2] and not list((run / "state").glob(".tmp-*"))
    assert "after 2 complete epochs" in err


def test_a_signal_after_the_last_epoch_lets_the_run_finish_as_it_ended(tmp_path):
    """Ctrl-C once every epoch has run (here from a callback's on_train_end, the last place
    before `fit` returns) has nothing left to stop: the model is saved and the run recorded
    completed, not interrupted with its model missing."""
    (tmp_path / "late.py").write_text(
        "import os, signal\nimport keras\n\n\n"
        "class Late(keras.callbacks.Callback):\n"
        "    def on_train_end(self, logs=None):\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n")
    path = write_config(tmp_path, tiny_config(fit={"epochs": 2}, callbacks=[
        {"type": "Custom", "class": "late:Late"}]))
    proc = cbrun_process("train", path, "--runs-dir", tmp_path / "runs", "-q")
    _out, err = proc.communicate(timeout=HANG_S)
    assert proc.returncode == 0, err[-3000:]
    run = only_run(tmp_path / "runs")
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed" and record["epochs_done"] == 2
    assert (run / "model.keras").is_file()
    assert "Ctrl-C after the last epoch: finishing the run (saving the model)" in err
