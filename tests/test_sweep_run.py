"""A real sweep: 5 digits trials, 2 at a time, killed (the whole process group, kill -9)
with 2 trials finished, one mid-run and one just started, then resumed at once, before
their heartbeats are stale.

The kill comes at the same point on any machine: a callback holds trials 2 and 3 of the
first run (2 after its first epoch, 3 as it starts) until the kill, so the study then
holds trials 0 and 1 ended and 2 and 3 running. The resume must retry 2 and 3 (numbered 4
and 5 in the study) before it asks for any new trial, however soon it starts: the new
trial is 6, whatever the timing. A last test kills a sweep between failing a trial
and queueing its retry: that retry comes first too.

One sweep serves every test here (each trial is a real TensorFlow process): it must end
with exactly 5 trials, none run twice, the interrupted ones continued exactly, a pruned one,
best.yaml, and Optuna's plots.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import HANG_S, REPO, cbrun_process, cli_output, tiny_config, write_config

from cbrun.sweep.study import ATTEMPT_ENV, HEARTBEAT_ENV

# Two epochs show what three did: a trial held after its first epoch resumes inside the
# run, and the pruned trial stops after epoch 1 of more.
EPOCHS = 2
# Optuna's heartbeat in the sweep processes, in seconds (grace: 6 of them). Shorter than
# cbrun's own 5 s, so the resumes wait for the killed trials to go stale in seconds; the
# main sweep keeps 3 (18 s of grace): its resume must start well inside the grace, however
# loaded the machine, for its killed trials to be doubtful rather than stale.
BEATS = {HEARTBEAT_ENV: "3"}
ORPHAN_BEATS = {HEARTBEAT_ENV: "2"}  # nothing there needs the resume to start in time
TRIALS = 5
HELD = {2: 1, 3: 0}  # trial -> the epochs it has done when the first run holds it
KILLED = sorted(HELD)
# Killed with trials 0 and 1 ended and 2 and 3 running: the resume retries 2 and 3 under
# the study's numbers 4 and 5, then asks for the new trial 6.
RETRIES, NEW = [4, 5], [6]
# With this seed the draws (a pure function of seed and trial number) give trials 0-3 the
# good learning rate and trial 6 the hopeless one: by the time trial 6 runs, finished
# good trials exist, so the median pruner stops it after its first epoch. The other keys do
# not change the first epochs, so good trials tie at the median and none of them is pruned.
SWEEP = f"""\
name: digits
base: base.yaml
space:
  compile.optimizer.learning_rate: {{type: choice, values: [0.01, 1.0e-7]}}
  callbacks.EarlyStopping.patience: {{type: int, low: 3, high: 9, step: 3}}
  callbacks.EarlyStopping.min_delta: {{type: uniform, low: 0.0, high: 0.001}}
metric: val_accuracy
trials: {TRIALS}
sampler: random
seed: 34
pruner: {{type: median, startup_trials: 1}}
"""
# The trial process's side of the kill: the first run of a held trial (the sweep names the
# study trial it runs in the environment) says so in a file and waits for its kill.
GATE = f"""\
import os
import time
from pathlib import Path

import keras


class Hold(keras.callbacks.Callback):
    def __init__(self, folder, at):
        super().__init__()
        self.folder = Path(folder)
        self.at = at.get(os.environ.get("{ATTEMPT_ENV}", ""))

    def hold(self):
        (self.folder / ("held-" + os.environ["{ATTEMPT_ENV}"])).write_text("")
        while True:
            time.sleep(0.1)

    def on_train_begin(self, logs=None):
        if self.at == 0:
            self.hold()

    def on_epoch_begin(self, epoch, logs=None):
        if self.at and epoch == self.at:
            self.hold()
"""
DRIVER = (  # the sweep driver in-process, to look at its sys.modules afterwards
    "import json, sys\n"
    "from cbrun.cli import _run\n"
    "code = _run(sys.argv[1:])\n"
    "print('RESULT', json.dumps({'code': code, 'heavy': [m for m in ('tensorflow', 'keras')"
    " if m in sys.modules]}))\n")


def run_json(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def trial_dirs(sweep_dir: Path) -> list[Path]:
    return sorted((sweep_dir / "trials").iterdir(), key=lambda p: p.name[-4:])


def epochs_in(run_dir: Path) -> list[int]:
    lines = (run_dir / "log.csv").read_text().splitlines()[1:]
    return [int(line.split(",")[0]) for line in lines]


def held(folder: Path, sweep_dir: Path, holds: dict[int, int]) -> bool:
    """The trials the gate holds are held, each with its epochs on disk."""
    if not all((folder / f"held-{n}").exists() for n in holds):
        return False
    run_dirs = {int(p.name[-3:]): p for p in (sweep_dir / "trials").glob("*")}
    try:
        return all(run_json(run_dirs[n])["epochs_done"] == at for n, at in holds.items())
    except (KeyError, OSError, ValueError):
        return False


def start_and_kill(folder: Path, holds: dict[int, int], base: dict, sweep: str,
                   *args: str, env: dict[str, str]) -> Path:
    """Runs the sweep until the gate holds `holds`, then kill -9 of its process group (the
    driver and every trial process at once, as a shell gives a command its own group)."""
    (folder / "gate.py").write_text(GATE)
    base["callbacks"] = [*base.get("callbacks", []), {
        "type": "Custom", "class": "gate:Hold",
        "params": {"folder": str(folder), "at": {str(n): at for n, at in holds.items()}}}]
    write_config(folder, base, "base.yaml")
    (folder / "sweep.yaml").write_text(sweep)
    sweep_dir = folder / "runs" / "sweeps" / yaml.safe_load(sweep)["name"]
    first = cbrun_process("sweep", "sweep.yaml", "--runs-dir", "runs", *args, cwd=folder,
                          start_new_session=True, env=env)
    deadline = time.monotonic() + HANG_S
    while not held(folder, sweep_dir, holds):
        assert first.poll() is None, f"the sweep ended:\n{first.communicate()}"
        assert time.monotonic() < deadline, "the held trials never came"
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    return sweep_dir


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweep")
    base = tiny_config(fit={"epochs": EPOCHS}, callbacks=[
        {"type": "EarlyStopping", "monitor": "val_loss", "patience": 5}])
    sweep_dir = start_and_kill(folder, HELD, base, SWEEP, "--jobs", "2", env=BEATS)
    before = {p.name: run_json(p) for p in trial_dirs(sweep_dir)}
    at_kill = {t.number: t.state.name for t in study_trials(sweep_dir)}
    assert at_kill == {0: "COMPLETE", 1: "COMPLETE", 2: "RUNNING", 3: "RUNNING"}, at_kill

    # At once: the killed trials' heartbeats are seconds old, far from stale.
    second = subprocess.run([sys.executable, "-c", DRIVER, "sweep", "--resume",
                             str(sweep_dir)], check=False, cwd=folder, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO), **BEATS},
                            timeout=HANG_S)
    result = json.loads(second.stdout.split("RESULT ")[-1])
    run_dirs = {int(p.name[-3:]): p for p in trial_dirs(sweep_dir)}
    return {"dir": sweep_dir, "folder": folder, "killed": {n: run_dirs[n] for n in KILLED},
            "before": before, "resume": result, "out": second.stdout, "err": second.stderr}


def study_trials(sweep_dir: Path):
    import optuna

    study = optuna.load_study(study_name=sweep_dir.name,
                              storage=f"sqlite:///{sweep_dir}/study.db")
    return study.get_trials()


def test_resume_ends_with_exactly_the_trials_asked_none_run_twice(sweep):
    from cbrun.sweep.sampler import first_number

    assert sweep["resume"]["code"] == 0, sweep["err"]
    # The trials the kill left running were failed by Optuna (their heartbeats stopped)
    # and retried under new numbers; each trial, by its first number, ended exactly once.
    trials = study_trials(sweep["dir"])
    ended = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert sorted(t.state.name for t in ended) == ["COMPLETE"] * 4 + ["PRUNED"]
    assert sorted(first_number(t) for t in ended) == [0, 1, *KILLED, *NEW]
    assert {t.state.name for t in trials} <= {"COMPLETE", "PRUNED", "FAIL"}
    assert not [t.number for t in trials if t.user_attrs.get("cancelled")]
    for killed in KILLED:
        assert [t.state.name for t in trials if first_number(t) == killed] == [
            "FAIL", "COMPLETE"]
    # The retries of the killed trials came before any new trial, though the resume began
    # long before their heartbeats were stale.
    retries = sorted(t.number for t in trials if first_number(t) != t.number)
    new = sorted(t.number for t in trials if first_number(t) == t.number and t.number > 3)
    assert (retries, new) == (RETRIES, NEW)
    dirs = trial_dirs(sweep["dir"])
    assert [d.name[-4:] for d in dirs] == [f"t{n:03d}" for n in (0, 1, *KILLED, *NEW)]
    # Trials finished before the kill were not touched again: same run.json.
    for name, data in sweep["before"].items():
        if data["status"] != "running":
            assert run_json(sweep["dir"] / "trials" / name) == data
    for run_dir in dirs:
        kinds = [s["kind"] for s in run_json(run_dir)["segments"]]
        assert kinds in (["train"], ["train", "resume"]), (run_dir, kinds)


def test_the_trials_killed_are_resumed_exactly_in_their_own_run_directories(
        sweep, tmp_path, capsys):
    for number, run_dir in sweep["killed"].items():
        data = run_json(run_dir)
        assert data["status"] == "completed"
        train, resume = data["segments"]
        assert (train["status"], resume["kind"]) == ("killed", "resume")
        assert resume["first_epoch"] == HELD[number] + 1
        assert epochs_in(run_dir) == list(range(EPOCHS))  # each epoch once, in order
    # One continuous run: the same trial config trained without a kill logs the same bytes
    # (its config beside the gate it names, which holds nothing outside a sweep).
    run_dir = sweep["killed"][2]
    again = tmp_path / "again"
    again.mkdir()
    shutil.copy(run_dir / "resolved.yaml", again / "run.yaml")
    shutil.copy(sweep["folder"] / "gate.py", again)
    assert cli_output(capsys, "train", again / "run.yaml", "--runs-dir", tmp_path / "runs",
                      "--quiet").code == 0
    rerun = next((tmp_path / "runs").iterdir())
    assert (rerun / "log.csv").read_bytes() == (run_dir / "log.csv").read_bytes()


def test_a_pruned_trial_stops_after_an_epoch_with_status_pruned(sweep):
    pruned = [run_json(d) for d in trial_dirs(sweep["dir"])
              if run_json(d)["status"] == "pruned"]
    assert len(pruned) == 1
    assert pruned[0]["epochs_done"] == 1 < EPOCHS
    assert pruned[0]["stop_reason"] == "pruned"
    assert pruned[0]["stop_note"] == "pruned by the sweep after epoch 1"
    # The sweep's id, which sweep.json and the study also hold.
    assert pruned[0]["sweep"]["id"] == json.loads((sweep["dir"] / "sweep.json").read_text())["id"]
    assert pruned[0]["sweep"]["study"] == sweep["dir"].name
    assert pruned[0]["sweep"]["trial"] == 6


def test_the_sweep_driver_never_imports_tensorflow(sweep):
    assert sweep["resume"]["heavy"] == []


def test_trials_that_run_the_users_code_train_in_processes_of_their_own(sweep):
    """The gate is a Custom callback: its module's state must not carry over between
    trials, so no trial shares a warm worker's process, and the sweep says why once."""
    note = ("train in a process of their own, not in a warm worker: the config runs your "
            "code (callbacks Custom)")
    assert sweep["out"].count(note) == 1, sweep["out"]
    pids = [pid for d in trial_dirs(sweep["dir"])
            for pid in {s["pid"] for s in run_json(d)["segments"]}]
    assert len(pids) == len(set(pids))


def test_sweep_json_best_yaml_and_the_plots(sweep, capsys):
    sweep_dir = sweep["dir"]
    record = json.loads((sweep_dir / "sweep.json").read_text())
    assert (record["status"], record["trials_done"]) == ("finished", TRIALS)
    assert (record["metric"], record["direction"]) == ("val_accuracy", "maximize")

    best = sweep_dir / "best.yaml"
    assert cli_output(capsys, "validate", best).code == 0
    text = best.read_text()
    trials = [t for t in study_trials(sweep_dir) if t.state.name == "COMPLETE"]
    top = max(trials, key=lambda t: t.value)
    assert f"trial {top.number}, val_accuracy = {top.value:.6g}" in text
    assert f"patience={top.params['callbacks.EarlyStopping.patience']}" in text

    import matplotlib.image

    for name in ("history.png", "parallel.png", "importances.png", "top.png"):
        pixels = matplotlib.image.imread(sweep_dir / name)
        assert pixels.shape[0] > 200 and pixels.std() > 0.05, name  # drawn, not blank
        assert len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 50, name


def test_sweep_show_prints_the_table_and_json(sweep, capsys):
    result = cli_output(capsys, "sweep", "show", sweep["dir"], "--json")
    assert result.code == 0
    shown = json.loads(result.out)
    rows = shown["trials"]
    assert [r["number"] for r in rows] == [0, 1, *KILLED, *NEW]
    attempts = [r["attempts"] for r in rows if r["number"] in KILLED]
    assert [a[0] for a in attempts] == KILLED and sorted(a[1] for a in attempts) == RETRIES
    assert [r["status"] for r in rows].count("pruned") == 1
    assert {r["epochs"] for r in rows if r["status"] == "completed"} == {EPOCHS}
    assert shown["best"]["value"] == max(r["value"] for r in rows if r["status"] == "completed")

    code, out, _ = cli_output(capsys, "sweep", "show", sweep["dir"])
    assert code == 0
    assert "sweep digits: val_accuracy (maximize)" in out
    assert f"best: trial {shown['best']['number']}" in out
    assert "the top trials' curves: cbrun plot " in out


ORPHAN_SWEEP = """\
name: orphan
base: base.yaml
space:
  model.layers[2].rate: {type: choice, values: [0.3]}
metric: val_accuracy
trials: 2
sampler: random
seed: 1
"""


def test_a_trial_failed_without_its_retry_queued_is_retried_before_any_new_one(tmp_path):
    """Optuna fails a stale trial, then queues its copy: a worker killed between the two
    leaves a failed trial and no retry. The resume queues that retry itself and resumes
    the trial in its own run directory before it asks for any new trial."""
    import optuna

    from cbrun.sweep.sampler import first_number

    sweep_dir = start_and_kill(tmp_path, {0: 1}, tiny_config(fit={"epochs": 2}),
                               ORPHAN_SWEEP, env=ORPHAN_BEATS)
    storage = optuna.storages.RDBStorage(f"sqlite:///{sweep_dir}/study.db")
    trial_id = storage.get_trial_id_from_study_id_trial_number(
        storage.get_study_id_from_name("orphan"), 0)
    storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)
    (killed,) = trial_dirs(sweep_dir)

    resumed = subprocess.run([sys.executable, "-m", "cbrun", "sweep", "--resume",
                              str(sweep_dir)], check=False, cwd=tmp_path, capture_output=True,
                             text=True, env={**os.environ, "PYTHONPATH": str(REPO),
                                             **ORPHAN_BEATS}, timeout=HANG_S)
    assert resumed.returncode == 0, resumed.stderr
    trials = study_trials(sweep_dir)
    assert [(t.number, first_number(t), t.state.name) for t in trials] == [
        (0, 0, "FAIL"), (1, 0, "COMPLETE"), (2, 2, "COMPLETE")]
    assert [d.name[-4:] for d in trial_dirs(sweep_dir)] == ["t000", "t002"]
    data = run_json(killed)
    assert [(s["kind"], s["status"]) for s in data["segments"]] == [
        ("train", "killed"), ("resume", "completed")]
    assert epochs_in(killed) == [0, 1]
