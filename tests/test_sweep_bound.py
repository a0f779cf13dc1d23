"""One small real sweep, stopped by Ctrl-C mid-trial and resumed, then taken apart: its
trial goes on in its own run directory, its value is its best epoch (not its last), and
the sweep directory is bound to its study: with the study deleted, made anew or another
storage given, the directory is refused rather than read as the new study's trials.
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

import pytest
from conftest import REPO, cbrun_process, cli_output, read_log, tiny_config, write_config

EPOCHS = 5
# The trial peaks before its last epoch by construction, not by the luck of a curve: its
# last epoch trains at a learning rate of 1 (Adam), which wrecks what the four before it
# learnt at 0.01 (val_accuracy falls to about chance). Its value must be the best epoch's.
SCHEDULE = {"kind": "piecewise", "boundaries": [EPOCHS - 1], "values": [0.01, 1.0]}
SWEEP = """\
name: peak
base: base.yaml
space:
  model.layers[2].rate: {type: choice, values: [0.3]}
metric: val_accuracy
trials: 1
sampler: random
seed: 1
"""


def run_json(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bound")
    write_config(folder, tiny_config(fit={"epochs": EPOCHS}, callbacks=[
        {"type": "LearningRateScheduler", "schedule": SCHEDULE}]), "base.yaml")
    (folder / "sweep.yaml").write_text(SWEEP)
    sweep_dir = folder / "runs" / "sweeps" / "peak"

    # Ctrl-C in a terminal reaches the whole process group: the driver and its trial.
    first = cbrun_process("sweep", "sweep.yaml", cwd=folder, start_new_session=True)
    stopped_after = None
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline and first.poll() is None and stopped_after is None:
        for run_dir in (sweep_dir / "trials").glob("*"):
            try:
                done = run_json(run_dir)["epochs_done"]
            except (OSError, ValueError):
                continue
            if done >= 2:
                os.killpg(first.pid, signal.SIGINT)
                stopped_after = done
        time.sleep(0.02)
    out, err = first.communicate(timeout=120)
    assert stopped_after is not None, f"never caught the trial mid-run:\n{out}\n{err}"
    second = subprocess.run([sys.executable, "-m", "cbrun", "sweep", "--resume",
                             str(sweep_dir)], cwd=folder, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=600,
                            check=False)
    return {"dir": sweep_dir, "folder": folder, "first": (first.returncode, err),
            "second": second, "stopped_after": stopped_after}


def study_trials(sweep_dir: Path):
    import optuna

    return optuna.load_study(study_name="peak",
                             storage=f"sqlite:///{sweep_dir}/study.db").get_trials()


def test_ctrl_c_stops_the_sweep_and_resume_goes_on_in_the_trials_own_run_directory(sweep):
    code, err = sweep["first"]
    assert code == 130 and "cbrun sweep --resume runs/sweeps/peak" in err, err
    assert sweep["second"].returncode == 0, sweep["second"].stderr
    (run_dir,) = (sweep["dir"] / "trials").iterdir()
    data = run_json(run_dir)
    assert data["status"] == "completed"
    assert [(s["kind"], s["status"]) for s in data["segments"]] == [
        ("train", "interrupted"), ("resume", "completed")]
    assert [int(r["epoch"]) for r in read_log(run_dir / "log.csv")] == list(range(EPOCHS))
    # In the study: the stopped trial failed, and a retry of it (Optuna's) completed.
    from cbrun.sweep.sampler import first_number

    trials = study_trials(sweep["dir"])
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"]
    assert first_number(trials[1]) == 0


def test_a_trials_value_is_its_best_epoch_not_its_last(sweep, capsys):
    (run_dir,) = (sweep["dir"] / "trials").iterdir()
    values = [float(r["val_accuracy"]) for r in read_log(run_dir / "log.csv")]
    # The setup's premise: the last epoch is clearly not the best (else this proves nothing).
    assert values.index(max(values)) < len(values) - 1 and values[-1] < max(values) - 0.2, (
        f"the trial must peak before its last epoch: {values}")
    (trial,) = [t for t in study_trials(sweep["dir"]) if t.state.name == "COMPLETE"]
    assert trial.value == max(values)
    shown = json.loads(cli_output(capsys, "sweep", "show", sweep["dir"], "--json").out)
    assert [(r["number"], r["value"], r["attempts"]) for r in shown["trials"]] == [
        (0, max(values), [0, 1])]
    assert f"val_accuracy = {max(values):.6g}" in (sweep["dir"] / "best.yaml").read_text()


@pytest.fixture
def copy(sweep, tmp_path) -> Path:
    """The finished sweep, copied: each test below breaks its own."""
    target = tmp_path / "runs" / "sweeps" / "peak"
    shutil.copytree(sweep["dir"], target)
    shutil.copy(sweep["folder"] / "base.yaml", tmp_path)
    shutil.copy(sweep["folder"] / "sweep.yaml", tmp_path)
    record = json.loads((target / "sweep.json").read_text())
    record["base"] = str(tmp_path / "base.yaml")
    record["storage"] = f"sqlite:///{target / 'study.db'}"
    (target / "sweep.json").write_text(json.dumps(record))
    return target


def refused(capsys, sweep_dir: Path, *storage: str) -> list[str]:
    """--resume, show and the sweep file run again: each refused in one line, and nothing
    in the directory changed."""
    before = {p: p.read_bytes() for p in sweep_dir.rglob("*") if p.is_file()}
    lines = []
    for args in (["--resume", sweep_dir], ["show", sweep_dir],
                 [sweep_dir.parents[2] / "sweep.yaml", "--runs-dir", sweep_dir.parents[1]]):
        result = cli_output(capsys, "sweep", *args, *storage)
        err = [line for line in result.err.splitlines() if line.strip()]
        assert (result.code, len(err)) == (2, 1), result
        lines.append(err[0])
    assert {p: p.read_bytes() for p in sweep_dir.rglob("*") if p.is_file()} == before
    return lines


def test_a_sweep_whose_study_was_deleted_is_refused(copy, capsys):
    (copy / "study.db").unlink()
    for line in refused(capsys, copy):
        assert "does not exist" in line and "give the storage it ran on with --storage URL, " \
                                              "or start a new sweep under another `name`" in line


def test_a_sweep_resumed_against_another_storage_is_refused(copy, capsys, tmp_path):
    import optuna

    other = f"sqlite:///{tmp_path / 'other.db'}"
    optuna.create_study(study_name="unrelated", storage=other)
    for line in refused(capsys, copy, "--storage", other):
        assert "holds trials of sweep 'peak', but the study of that name in" in line
        assert "does not exist" in line and "give that storage with --storage URL" in line


def test_a_study_made_anew_under_the_same_name_is_refused(copy, capsys):
    import optuna

    storage = f"sqlite:///{copy / 'study.db'}"
    optuna.delete_study(study_name="peak", storage=storage)
    study = optuna.create_study(study_name="peak", storage=storage, direction="maximize")
    for line in refused(capsys, copy):
        assert "does not know this sweep" in line, line
    # Made anew by another sweep directory: its id is not this directory's.
    study.set_user_attr("cbrun_sweep_id", "0123456789abcdef")
    for line in refused(capsys, copy):
        assert "belongs to another sweep (id 0123456789abcdef)" in line, line


def test_a_trial_directory_of_another_sweep_is_never_taken_as_a_result(copy, capsys):
    (own,) = (copy / "trials").iterdir()
    stranger = copy / "trials" / "29991231-000000-tiny-t000"  # newer, same trial number
    shutil.copytree(own, stranger)
    data = run_json(stranger)
    data["sweep"]["id"] = "another-sweep"
    (stranger / "run.json").write_text(json.dumps(data))
    shown = json.loads(cli_output(capsys, "sweep", "show", copy, "--json").out)
    assert [Path(r["run_dir"]).name for r in shown["trials"]] == [own.name]


def test_a_lost_sweep_json_is_made_again_from_the_study_its_trials_name(copy, capsys):
    record = json.loads((copy / "sweep.json").read_text())
    (copy / "sweep.json").unlink()
    result = cli_output(capsys, "sweep", copy.parents[2] / "sweep.yaml", "--runs-dir",
                        copy.parents[1])
    assert result.code == 0, result
    assert json.loads((copy / "sweep.json").read_text())["id"] == record["id"]
