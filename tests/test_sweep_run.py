"""A real sweep: 6 digits trials, 2 at a time, killed (the whole process group, kill -9)
once 2 trials have finished and another is mid-run, then resumed.

One sweep serves every test here (each trial is a real TensorFlow process): it must end
with exactly 6 trials, none run twice, the interrupted one continued exactly, a pruned one,
best.yaml, and Optuna's plots.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import HANG_S, cbrun_process, cli_output, tiny_config, write_config

from tests.helpers.light import run_cbrun

EPOCHS = 3
TRIALS = 6
# With this seed the draws (a pure function of seed and trial number) give trials 0-3 the
# good learning rate and trial 4 the hopeless one: by the time trial 4 runs, finished good
# trials exist, so the median pruner stops it after its first epoch. The other keys do not
# change the first 3 epochs, so good trials tie at the median and none of them is pruned.
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
seed: 36
pruner: {{type: median, startup_trials: 1}}
"""


def run_json(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def trial_dirs(sweep_dir: Path) -> list[Path]:
    return sorted((sweep_dir / "trials").iterdir(), key=lambda p: p.name[-4:])


def epochs_in(run_dir: Path) -> list[int]:
    lines = (run_dir / "log.csv").read_text().splitlines()[1:]
    return [int(line.split(",")[0]) for line in lines]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweep")
    write_config(folder, tiny_config(fit={"epochs": EPOCHS}, callbacks=[
        {"type": "EarlyStopping", "monitor": "val_loss", "patience": 5}]), "base.yaml")
    (folder / "sweep.yaml").write_text(SWEEP)
    sweep_dir = folder / "runs" / "sweeps" / "digits"

    # Its own process group, as a shell gives a command: kill -9 of the group takes the
    # driver and every trial process at once.
    first = cbrun_process("sweep", "sweep.yaml", "--jobs", "2", "--runs-dir", "runs",
                          cwd=folder, start_new_session=True)
    killed_mid_run = None
    deadline = time.monotonic() + HANG_S
    while time.monotonic() < deadline and first.poll() is None:
        finished, mid = 0, None
        for run_dir in (sweep_dir / "trials").glob("*"):
            try:
                data = run_json(run_dir)
            except (OSError, ValueError):
                continue
            if data["status"] != "running":
                finished += 1
            elif 1 <= data["epochs_done"] < EPOCHS:
                mid = run_dir
        if finished >= 2 and mid is not None:
            os.killpg(first.pid, signal.SIGKILL)
            killed_mid_run = (mid, run_json(mid)["epochs_done"], finished)
            break
        time.sleep(0.02)
    first.wait()
    first_out = first.stdout.read() + first.stderr.read()
    assert killed_mid_run is not None, f"never caught a trial mid-run:\n{first_out}"
    before = {p.name: run_json(p) for p in trial_dirs(sweep_dir)}

    # The driver of the resume in a process of its own, to see what it imported (its trials
    # are processes of their own).
    second = run_cbrun(["sweep", "--resume", sweep_dir], cwd=folder)
    (resumed,) = second.commands
    return {"dir": sweep_dir, "folder": folder, "killed": killed_mid_run, "before": before,
            "resume": {"code": resumed.code, "heavy": second.heavy},
            "out": resumed.out + second.out, "err": resumed.err + second.err}


def study_trials(sweep_dir: Path):
    import optuna

    study = optuna.load_study(study_name="digits", storage=f"sqlite:///{sweep_dir}/study.db")
    return study.get_trials()


def test_resume_ends_with_exactly_the_trials_asked_none_run_twice(sweep):
    from cbrun.sweep.sampler import first_number

    assert sweep["resume"]["code"] == 0, sweep["err"]
    # The trials the kill left running were failed by Optuna (their heartbeats stopped)
    # and retried under new numbers; each trial, by its first number, ended exactly once.
    trials = study_trials(sweep["dir"])
    ended = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert sorted(t.state.name for t in ended) == ["COMPLETE"] * 5 + ["PRUNED"]
    assert sorted(first_number(t) for t in ended) == list(range(TRIALS))
    assert {t.state.name for t in trials} <= {"COMPLETE", "PRUNED", "FAIL"}
    for failed in (t for t in trials if t.state.name == "FAIL"):
        assert first_number(failed) in {first_number(t) for t in ended}
    killed = int(sweep["killed"][0].name[-3:])
    assert [t.state.name for t in trials if first_number(t) == killed] == ["FAIL", "COMPLETE"]
    dirs = trial_dirs(sweep["dir"])
    assert [d.name[-4:] for d in dirs] == [f"t{n:03d}" for n in range(TRIALS)]
    # Trials finished before the kill were not touched again: same run.json.
    for name, data in sweep["before"].items():
        if data["status"] != "running":
            assert run_json(sweep["dir"] / "trials" / name) == data
    for run_dir in dirs:
        kinds = [s["kind"] for s in run_json(run_dir)["segments"]]
        assert kinds in (["train"], ["train", "resume"]), (run_dir, kinds)


def test_the_trial_killed_mid_run_is_resumed_exactly(sweep, tmp_path, capsys):
    run_dir, done_at_kill, finished = sweep["killed"]
    assert finished >= 2
    data = run_json(run_dir)
    assert data["status"] == "completed"
    train, resume = data["segments"]
    assert (train["status"], resume["kind"]) == ("killed", "resume")
    assert resume["first_epoch"] == done_at_kill + 1
    assert epochs_in(run_dir) == list(range(EPOCHS))  # each epoch once, in order
    # One continuous run: the same trial config trained without a kill logs the same bytes.
    assert cli_output(capsys, "train", run_dir / "resolved.yaml", "--runs-dir", tmp_path,
                      "--quiet").code == 0
    again = next(tmp_path.iterdir())
    assert (again / "log.csv").read_bytes() == (run_dir / "log.csv").read_bytes()


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
    assert pruned[0]["sweep"]["trial"] == 4


def test_the_sweep_driver_never_imports_tensorflow(sweep):
    assert sweep["resume"]["heavy"] == []


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
    assert [r["number"] for r in rows] == list(range(TRIALS))
    assert [r["status"] for r in rows].count("pruned") == 1
    assert {r["epochs"] for r in rows if r["status"] == "completed"} == {EPOCHS}
    assert shown["best"]["value"] == max(r["value"] for r in rows if r["status"] == "completed")

    code, out, _ = cli_output(capsys, "sweep", "show", sweep["dir"])
    assert code == 0
    assert "sweep digits: val_accuracy (maximize)" in out
    assert f"best: trial {shown['best']['number']}" in out
    assert "the top trials' curves: cbrun plot " in out
