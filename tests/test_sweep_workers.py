"""Two sweep workers, separate processes with separate run folders as on two machines,
share one study through its storage: SQLite, and a real PostgreSQL server (the binaries
of the `pgserver` package, which the test extra installs); one of them killed, the other
takes its trial over."""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import pytest
from conftest import HANG_S, cbrun_process, tiny_config, write_config

from cbrun.sweep.study import HEARTBEAT_ENV

TRIALS = 4
SWEEP = f"""\
name: shared
base: base.yaml
space:
  compile.optimizer.learning_rate: {{type: loguniform, low: 1.0e-3, high: 3.0e-2}}
  model.layers[1].units: {{type: choice, values: [16, 32]}}
trials: {TRIALS}
sampler: random
seed: 3
"""
BEATS = {HEARTBEAT_ENV: "2"}  # Optuna's heartbeat in seconds (grace: 6 of them, 12 not 30)


def two_workers(folder: Path, storage: str) -> dict[str, list[dict]]:
    write_config(folder, tiny_config(fit={"epochs": 2}), "base.yaml")
    (folder / "sweep.yaml").write_text(SWEEP)
    workers = {name: cbrun_process("sweep", "sweep.yaml", "--storage", storage,
                                   "--runs-dir", name, cwd=folder)
               for name in ("machine-a", "machine-b")}
    for name, proc in workers.items():
        out, err = proc.communicate(timeout=HANG_S)
        assert proc.returncode == 0, f"{name}:\n{out}\n{err}"
    found = {}
    for name in workers:
        trials = folder / name / "sweeps" / "shared" / "trials"
        found[name] = [json.loads((d / "run.json").read_text()) for d in trials.iterdir()]
    return found


def check_one_study(found: dict[str, list[dict]], storage: str) -> None:
    import optuna

    from cbrun.sweep.study import open_storage

    study = optuna.load_study(study_name="shared", storage=open_storage(storage))
    trials = [t for t in study.get_trials() if not t.user_attrs.get("cancelled")]
    assert sorted(t.number for t in trials) == list(range(TRIALS))
    assert {t.state.name for t in trials} == {"COMPLETE"}
    numbers = [run["sweep"]["trial"] for runs in found.values() for run in runs]
    assert sorted(numbers) == list(range(TRIALS))  # each trial number ran once, somewhere
    assert all(runs for runs in found.values()), "both workers ran trials"
    for name, runs in found.items():
        for run in runs:
            trial = next(t for t in trials if t.number == run["sweep"]["trial"])
            assert trial.user_attrs["sweep_dir"].endswith(f"{name}/sweeps/shared")
            assert run["status"] == "completed"


def test_two_workers_share_one_sqlite_study(tmp_path):
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    check_one_study(two_workers(tmp_path, storage), storage)


@pytest.fixture
def postgres():
    """A PostgreSQL server of its own, on a Unix socket in a temporary folder; stopped and
    removed at the end. As root, pgserver runs it as a user of its own, which must reach the
    folder: not under pytest's tmp_path, whose root pytest keeps private (mode 700)."""
    import pgserver

    folder = Path(tempfile.mkdtemp(prefix="cbrun-pg-"))
    data = folder / "pgdata"
    try:
        server = pgserver.get_server(data, cleanup_mode="stop")
        yield server.get_uri()
        server.cleanup()
        deadline = time.monotonic() + HANG_S
        while (data / "postmaster.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not (data / "postmaster.pid").exists(), "the server did not stop"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_two_workers_share_one_postgresql_study(tmp_path, postgres):
    assert postgres.startswith("postgresql://")
    found = two_workers(tmp_path / "work", postgres)
    check_one_study(found, postgres)


def test_a_worker_killed_alone_has_its_trial_stopped_and_taken_over(tmp_path):
    """kill -9 of one worker's process, not of its trial: the trial stops itself,
    interrupted, and once its heartbeat is stale the other worker takes it over."""
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    write_config(tmp_path, tiny_config(fit={"epochs": 12}), "base.yaml")
    (tmp_path / "sweep.yaml").write_text(SWEEP)
    # Grace 12 s, not 30: the takeover waits for the killed worker's trial to go stale.
    workers = {name: cbrun_process("sweep", "sweep.yaml", "--storage", storage,
                                   "--runs-dir", name, cwd=tmp_path, env=BEATS)
               for name in ("machine-a", "machine-b")}
    trials_a = tmp_path / "machine-a" / "sweeps" / "shared" / "trials"
    killed = None
    deadline = time.monotonic() + 300
    while killed is None and time.monotonic() < deadline:
        for run_dir in trials_a.glob("*"):
            try:
                if json.loads((run_dir / "run.json").read_text())["epochs_done"] >= 1:
                    os.kill(workers["machine-a"].pid, signal.SIGKILL)
                    killed = run_dir
            except (OSError, ValueError):
                continue
        time.sleep(0.02)
    assert killed is not None, workers["machine-a"].communicate()
    out, err = workers["machine-b"].communicate(timeout=600)
    assert workers["machine-b"].returncode == 0, f"{out}\n{err}"
    workers["machine-a"].wait()

    deadline = time.monotonic() + 60  # the orphaned trial notices its worker is gone
    while json.loads((killed / "run.json").read_text())["status"] == "running":
        assert time.monotonic() < deadline, "the orphaned trial went on"
        time.sleep(0.2)
    assert json.loads((killed / "run.json").read_text())["status"] == "interrupted"
    number = int(killed.name[-3:])
    assert f"trial {number}: restarting" in out

    import optuna

    from cbrun.sweep.sampler import first_number

    study = optuna.load_study(study_name="shared", storage=storage)
    ended = [t for t in study.get_trials() if t.state.name == "COMPLETE"]
    # Exactly the trials asked, each once (by its first number: the retry's own number
    # in the study is not a trial of its own, so the numbers may skip it).
    assert len(ended) == len({first_number(t) for t in ended}) == TRIALS
    (taken_over,) = [t for t in ended if first_number(t) == number]
    assert taken_over.number != number
    assert taken_over.user_attrs["sweep_dir"].endswith("machine-b/sweeps/shared")
