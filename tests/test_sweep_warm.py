"""Warm sweep workers: one process imports TensorFlow once and trains trial after trial,
each exactly what `cbrun train` of its config alone would train.

One small real sweep, one trial at a time, whose draws (a pure function of the seed and the
trial number) are: trial 0 in mixed_bfloat16, trial 1 in float32 (a policy left behind by
trial 0 would change its numbers), trial 2 a config that raises inside its session
(steps_per_execution 7 does not divide the epoch's 23 batches), trial 3 in mixed_bfloat16
again. Then a sweep whose worker is killed mid-trial.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import HANG_S, REPO, cbrun_process, cli_output, tiny_config, write_config

from cbrun.config.load import load_config
from cbrun.sweep.pool import why_fresh

SWEEP = """\
name: warm
base: base.yaml
space:
  compile.mixed_precision: {type: choice, values: [null, mixed_bfloat16]}
  compile.steps_per_execution: {type: choice, values: [1, 7]}
trials: 3
sampler: random
seed: 37
"""
PLOTS = ("history.png", "parallel.png", "importances.png", "top.png")
# What seed 37 draws for trials 0-3 (checked below before anything relies on it).
DRAWN = [("mixed_bfloat16", 1), (None, 1), ("mixed_bfloat16", 7), ("mixed_bfloat16", 1)]


def run_json(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def trial_dirs(sweep_dir: Path) -> dict[int, Path]:
    return {int(p.name[-3:]): p for p in (sweep_dir / "trials").iterdir()}


def sweep_in(folder: Path, sweep: str, base: dict, *args: str):
    write_config(folder, base, "base.yaml")
    (folder / "sweep.yaml").write_text(sweep)
    proc = cbrun_process("sweep", "sweep.yaml", "--runs-dir", "runs", *args, cwd=folder)
    return proc, folder / "runs" / "sweeps" / yaml.safe_load(sweep)["name"]


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    folder = tmp_path_factory.mktemp("warm")
    proc, sweep_dir = sweep_in(folder, SWEEP, tiny_config(fit={"epochs": 2}))
    out, err = proc.communicate(timeout=HANG_S)
    assert proc.returncode == 0, f"{out}\n{err}"
    return {"dir": sweep_dir, "folder": folder, "out": out, "driver": proc.pid}


def test_the_draws_are_those_the_tests_rely_on(warm):
    import optuna

    study = optuna.load_study(study_name="warm", storage=f"sqlite:///{warm['dir']}/study.db")
    drawn = [(t.params["compile.mixed_precision"], t.params["compile.steps_per_execution"])
             for t in sorted(study.get_trials(), key=lambda t: t.number)]
    assert drawn == DRAWN
    assert [t.state.name for t in study.get_trials()] == [
        "COMPLETE", "COMPLETE", "FAIL", "COMPLETE"]


def test_one_worker_process_trains_trial_after_trial(warm):
    runs = {n: run_json(d) for n, d in trial_dirs(warm["dir"]).items()}
    assert sorted(runs) == [0, 1, 3]  # trial 2 raised before its first epoch: no run kept
    pids = {n: run["pid"] for n, run in runs.items()}
    # Trials 0 and 1 in one process, which is not the sweep's own; the trial that raised
    # cost its worker, so trial 3 trained in a new one.
    assert pids[0] == pids[1] != warm["driver"]
    assert pids[3] not in (pids[0], warm["driver"])
    assert all(run["status"] == "completed" for run in runs.values())
    assert "trial 2: failed (no run directory), see logs/trial-002.log" in warm["out"]
    assert "must divide the 23 batches" in (warm["dir"] / "logs" / "trial-002.log").read_text()
    assert "process of their own" not in warm["out"]


def test_a_warm_trial_logs_what_its_config_trained_alone_logs(warm, tmp_path):
    """Each trial's resolved config, trained by `cbrun train` in a process of its own,
    writes the same log.csv byte for byte: nothing of the trial before (another dtype
    policy, a session, seeds) reached it, nor of a trial that raised."""
    started = {}
    for number, run_dir in trial_dirs(warm["dir"]).items():
        alone = tmp_path / f"alone-{number}"
        config = yaml.safe_load((run_dir / "resolved.yaml").read_text())
        assert config["compile"]["mixed_precision"] == DRAWN[number][0]
        write_config(alone, config)
        started[number] = alone, cbrun_process("train", "run.yaml", "--runs-dir", "runs",
                                               "--quiet", cwd=alone)
    for number, (alone, proc) in started.items():
        _, err = proc.communicate(timeout=HANG_S)
        assert proc.returncode == 0, err
        trained = next((alone / "runs").iterdir())
        warm_log = (trial_dirs(warm["dir"])[number] / "log.csv").read_bytes()
        assert (trained / "log.csv").read_bytes() == warm_log, number


# Seed 4 draws 40 epochs for trial 0, long enough to be killed inside, and 2 for trial 1,
# the trial that must then train in a new worker (checked below).
KILLED = """\
name: killed
base: base.yaml
space:
  fit.epochs: {type: choice, values: [40, 2]}
trials: 1
sampler: random
seed: 4
"""


def test_a_worker_killed_mid_trial_costs_that_trial_not_the_sweep(tmp_path):
    """kill -9 of the worker process while its trial trains: the trial is failed, as a
    killed trial process always was, and the next trial trains in a new worker."""
    proc, sweep_dir = sweep_in(tmp_path, KILLED, tiny_config())
    killed = None
    deadline = time.monotonic() + HANG_S
    while killed is None:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the first trial never trained an epoch"
        for run_dir in sweep_dir.glob("trials/*"):
            try:
                data = run_json(run_dir)
            except (OSError, ValueError):
                continue
            if data["epochs_done"] >= 1:
                os.kill(data["pid"], signal.SIGKILL)
                killed = run_dir, data["pid"]
        time.sleep(0.02)
    out, err = proc.communicate(timeout=HANG_S)
    assert proc.returncode == 0, f"{out}\n{err}"
    run_dir, pid = killed
    assert f"trial 0: failed (running), see {run_dir.relative_to(sweep_dir)}" in out
    (done,) = [d for d in sweep_dir.glob("trials/*") if d != run_dir]
    assert run_json(done)["status"] == "completed"
    assert run_json(done)["pid"] != pid
    assert (run_json(run_dir)["epochs_planned"], run_json(done)["epochs_planned"]) == (40, 2)


def test_the_plots_are_those_sweep_show_draws_afresh(warm, tmp_path):
    """The sweep readies its drawing (matplotlib's and Optuna's imports, a figure drawn in
    memory) while trials train; its PNGs are byte for byte those of `cbrun sweep show` in
    a process that did none of that."""
    copy = tmp_path / "warm"
    shutil.copytree(warm["dir"], copy)
    drawn = {name: (copy / name).read_bytes() for name in PLOTS}
    for name in PLOTS:
        (copy / name).unlink()
    shown = subprocess.run([sys.executable, "-m", "cbrun", "sweep", "show", str(copy)],
                           env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                           text=True, timeout=HANG_S, check=False)
    assert shown.returncode == 0, shown.stderr
    for name in PLOTS:
        assert (copy / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert (copy / name).read_bytes() == drawn[name], name


def worker_processes() -> list[int]:
    """The warm sweep workers this process started that are still running."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, parent = stat.read_text().rsplit(")", 1)[1].split()[:2]
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:  # ended meanwhile
            continue
        if int(parent) == os.getpid() and state != "Z" and b"cbrun.sweep.worker" in command:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.parametrize("refusal, args, says", [
    ("space", [], "fit.epochs"),
    ("storage", ["--storage", "sqlite:///{tmp}/no/such/folder/x.db"],
     "unable to open database file"),
])
def test_a_refused_sweep_leaves_no_worker_behind(tmp_path, capsys, refusal, args, says):
    """The first worker starts with the command, its TensorFlow import beside the sweep's
    checks and the study's set-up; a sweep refused meanwhile (a space that makes an
    invalid config, a storage that does not open) ends it with the refusal."""
    assert worker_processes() == []
    write_config(tmp_path, tiny_config(), "base.yaml")
    low = 0 if refusal == "space" else 1
    (tmp_path / "sweep.yaml").write_text(
        f"name: x\nbase: base.yaml\nspace: {{fit.epochs: {{type: int, low: {low}, "
        f"high: 2}}}}\ntrials: 1\n")
    code, out, err = cli_output(capsys, "sweep", tmp_path / "sweep.yaml", "--runs-dir",
                                tmp_path / "runs", *(a.format(tmp=tmp_path) for a in args))
    assert code == 2 and says in err, out + err
    assert worker_processes() == []


TRACKED = """\
name: tracked
base: base.yaml
space:
  compile.optimizer.learning_rate: {type: choice, values: [0.01, 0.002]}
trials: 2
sampler: grid
"""


def test_tracked_trials_share_a_warm_worker_each_with_its_own_mlflow_run(tmp_path):
    """A trial's trackers run in a tracking process of its own, started and ended with the
    trial's segment (cbrun/tracking/child.py): the worker's process never imports MLflow,
    so tracked trials train in it, and no trial's run gets another's params or epochs."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    base = tiny_config(fit={"epochs": 2},
                       tracking={"mlflow": {"tracking_uri": uri, "experiment": "sweep"}})
    proc, sweep_dir = sweep_in(tmp_path, TRACKED, base)
    out, err = proc.communicate(timeout=HANG_S)
    assert proc.returncode == 0, f"{out}\n{err}"
    assert "process of their own" not in out, out
    dirs = trial_dirs(sweep_dir)
    runs = {n: run_json(d) for n, d in dirs.items()}
    assert sorted(runs) == [0, 1]
    assert len({run["pid"] for run in runs.values()} | {proc.pid}) == 2  # one worker
    client = MlflowClient(tracking_uri=uri)
    seen = set()
    for number, run in runs.items():
        entry = run["tracking"]["mlflow"]
        assert entry["unsent"] == [] and entry["error"] is None, entry
        tracked = client.get_run(entry["run_id"])
        rate = tracked.data.params["compile.optimizer.learning_rate"]
        trained = yaml.safe_load((dirs[number] / "resolved.yaml").read_text())
        assert float(rate) == trained["compile"]["optimizer"]["learning_rate"]
        seen.add(rate)
        steps = [m.step for m in client.get_metric_history(entry["run_id"], "val_loss")]
        assert sorted(steps) == [1, 2], steps  # its own two epochs, no other trial's
        assert tracked.info.status == "FINISHED"
    assert seen == {"0.01", "0.002"}


@pytest.mark.parametrize("change, why", [
    ({"backend": "jax"}, "backend: jax"),
    ({"distribute": {"type": "one_device", "device": "/cpu:0"}}, "distribute: one_device"),
    ({"callbacks": [{"type": "Custom", "class": "mine:Hook"}]},
     "the config runs your code (callbacks Custom)"),
    ({"callbacks": [{"type": "LambdaCallback", "on_epoch_end": "mine:hook"}]},
     "the config runs your code (callbacks LambdaCallback)"),
    ({"model": {"factory": "mine:build"}}, "the config runs your code (model.factory mine:build)"),
    ({"data": {"source": "python", "function": "mine:load"}},
     "the config runs your code (data.function mine:load)"),
])
def test_configs_that_cannot_share_a_process_say_why(tmp_path, change, why):
    assert why_fresh(load_config(write_config(tmp_path, tiny_config())).config) is None
    found = why_fresh(load_config(write_config(tmp_path, tiny_config(**change))).config)
    assert found is not None and found.startswith(why), found


def test_between_trials_every_keras_setting_is_put_back():
    """What a trial's code could change in Keras's process-wide settings, as the worker's
    import found it before the next trial."""
    from cbrun.engine.tfimport import import_tensorflow

    import_tensorflow()
    import keras

    from cbrun.engine.worker_state import keras_settings, put_back

    found = keras_settings()
    assert {"floatx", "epsilon", "image_data_format", "dtype_policy",
            "traceback_filtering"} <= set(found)
    keras.config.set_floatx("float16")
    keras.config.set_epsilon(1e-3)
    keras.config.set_image_data_format("channels_first")
    keras.config.disable_traceback_filtering()
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    assert keras_settings() != found
    put_back(found)
    assert keras_settings() == found
    gc.unfreeze()  # put_back froze what this test process holds
