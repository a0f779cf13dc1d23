"""Tracking: a real MLflow store (SQLite in a temp dir) and W&B offline runs, read back with
their own readers (MlflowClient; wandb-core's transaction-log reader) and compared with the
run's log.csv; a resume after SIGKILL continues the same tracked runs; a tracker that is down
costs a warning, never the run."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import cbrun_process, cli, cli_output, only_run, read_log, tiny_config, write_config

from cbrun.runguard import check_tree

EPOCHS = 3
# patience 0 and a huge min_delta: from epoch 2 on no epoch counts as better, so the rate is
# cut after epoch 2 and epoch 3 trains at half of it: an event.
CUT_AFTER_EPOCH_2 = {"type": "ReduceLROnPlateau", "monitor": "val_loss", "factor": 0.5,
                     "patience": 0, "min_delta": 5.0}


def tracking_for(folder: Path, **mlflow) -> dict:
    return {
        "mlflow": {"tracking_uri": f"sqlite:///{folder / 'mlflow.db'}", "experiment": "digits",
                   "artifact_location": str(folder / "artifacts"), "tags": {"team": "vision"},
                   **mlflow},
        "wandb": {"project": "cbrun-tests", "mode": "offline"},
    }


def client_for(folder: Path):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")


def history(client, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def log_columns(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """log.csv as {column: [(1-based epoch, value), ...]}: what each tracker must hold."""
    out: dict[str, list[tuple[int, float]]] = {}
    for row in read_log(run_dir / "log.csv"):
        epoch = int(row["epoch"]) + 1
        for key, value in row.items():
            if key != "epoch":
                out.setdefault(key, []).append((epoch, float(value)))
    return out


def wandb_records(run_dir: Path) -> list[list[dict]]:
    """Every record of each offline W&B run file (one file per train or resume process),
    in the order they were written, read with wandb-core's own transaction-log reader."""
    import wandb

    reader = Path(wandb.__file__).parent / "bin" / "wandb-core"
    files = sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb"),
                   key=lambda p: p.parent.name)
    out = []
    for file in files:
        result = subprocess.run(
            [str(reader), "leet", "inspect", "-json", "-no-observability", "-run-file",
             str(file)], capture_output=True, text=True, timeout=60, check=True)
        out.append([json.loads(line) for line in result.stdout.splitlines() if line.strip()])
    return out


def wandb_history(records: list[dict]) -> list[dict]:
    return [r["history"]["item"] for r in records if r["type"] == "history"]


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tracked")
    config = tiny_config(fit={"epochs": EPOCHS}, callbacks=[CUT_AFTER_EPOCH_2],
                         tracking=tracking_for(folder, log_model=True))
    path = write_config(folder, config)
    assert cli("train", path, "--runs-dir", folder / "runs", "--quiet") == 0
    return folder, only_run(folder / "runs")


def test_mlflow_holds_params_every_epoch_once_and_the_files(tracked):
    folder, run_dir = tracked
    record = json.loads((run_dir / "run.json").read_text())
    entry = record["tracking"]["mlflow"]
    assert entry["unsent"] == [] and entry["error"] is None
    client = client_for(folder)
    run = client.get_run(entry["run_id"])
    assert run.info.status == "FINISHED"
    assert run.info.run_name == run_dir.name
    assert run.data.tags["team"] == "vision" and run.data.tags["cbrun.run_id"] == run_dir.name
    assert run.data.tags["cbrun.status"] == "completed"

    params = run.data.params
    assert params["fit.epochs"] == str(EPOCHS)
    assert params["compile.optimizer.learning_rate"] == "0.01"
    assert params["callbacks.0.type"] == "ReduceLROnPlateau"
    assert params["model.layers.1.units"] == "32"
    assert params["tracking.wandb.mode"] == "offline"

    expected = log_columns(run_dir)
    assert {"loss", "val_loss", "accuracy", "learning_rate"} <= set(expected)
    for key, points in expected.items():
        assert history(client, entry["run_id"], key) == points, key
    rates = [v for _, v in expected["learning_rate"]]
    assert rates[2] == pytest.approx(rates[1] / 2)  # the cut is in the metrics too

    best = record["best"]
    assert run.data.metrics["best_val_loss"] == best["value"]
    assert run.data.metrics["best_epoch"] == best["epoch"]
    assert run.data.metrics["final_loss"] == expected["loss"][-1][1]

    artifacts = {a.path for a in client.list_artifacts(entry["run_id"])}
    assert {"config.yaml", "resolved.yaml", "log.csv", "log.png", "model.keras",
            "events.txt"} <= artifacts
    local = Path(client.download_artifacts(entry["run_id"], "log.csv",
                                           str(folder / "downloaded")))
    assert local.read_bytes() == (run_dir / "log.csv").read_bytes()
    events = Path(client.download_artifacts(entry["run_id"], "events.txt",
                                            str(folder / "downloaded"))).read_text()
    assert "epoch 3: learning rate 0.01 -> 0.005" in events
    png = Path(client.download_artifacts(entry["run_id"], "log.png", str(folder / "downloaded")))
    _assert_drawn(png)


def _assert_drawn(png: Path) -> None:
    import matplotlib.image

    pixels = matplotlib.image.imread(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert len({tuple(p) for p in pixels.reshape(-1, pixels.shape[-1])[::97]}) > 5  # not blank


def test_wandb_offline_run_holds_the_same(tracked):
    _, run_dir = tracked
    record = json.loads((run_dir / "run.json").read_text())
    entry = record["tracking"]["wandb"]
    assert entry["unsent"] == [] and entry["mode"] == "offline" and entry["url"] is None
    assert (run_dir / entry["offline_dir"]).is_dir()
    (records,) = wandb_records(run_dir)

    (run,) = [r["run"] for r in records if r["type"] == "run"]
    assert run["run_id"] == entry["run_id"] and run["project"] == "cbrun-tests"
    assert run["display_name"] == run_dir.name
    config = {k: v for r in records if r["type"] == "config"
              for k, v in r["config"]["update"].items()}
    assert config["fit.epochs"] == str(EPOCHS) and config["callbacks.0.type"] == "ReduceLROnPlateau"

    rows = wandb_history(records)
    assert [row["_step"] for row in rows] == list(range(1, EPOCHS + 1))
    for key, points in log_columns(run_dir).items():
        assert [(row["_step"], row[key]) for row in rows] == points, key

    summary = {k: v for r in records if r["type"] == "summary"
               for k, v in r["summary"]["update"].items()}
    assert summary["best_val_loss"] == record["best"]["value"]
    assert summary["cbrun.status"] == "completed"
    assert any("learning rate 0.01 -> 0.005" in line for line in summary["events"])
    files = {f["path"] for r in records if r["type"] == "files" for f in r["files"]["files"]}
    assert {"config.yaml", "resolved.yaml", "log.csv", "log.png", "model.keras"} <= files
    assert [r["exit"]["exit_code"] for r in records if r["type"] == "exit"] == [0]
    check_tree(run_dir)  # no links W&B made would stop a resume


def test_sigkill_and_resume_continue_the_same_tracked_runs(tmp_path):
    """Killed in epoch 3 (or while saving epoch 2): the resume continues the same MLflow and
    W&B runs, and each epoch is there exactly once, equal to log.csv."""
    epochs = 5
    config = tiny_config(fit={"epochs": epochs}, tracking=tracking_for(tmp_path))
    path = write_config(tmp_path, config)
    runs = tmp_path / "runs"
    # Its own W&B service: this test process's (WANDB_SERVICE, set by an earlier in-process
    # run) would outlive the kill and still hold the run's stream when the resume asks.
    proc = cbrun_process("train", path, "--runs-dir", runs, "--quiet",
                         env={"WANDB_SERVICE": "", **OWN_WANDB_DIRS})
    deadline = time.monotonic() + 600  # a guard against a hang on a loaded machine
    while not any(len(p.read_text().splitlines()) >= 3 for p in runs.glob("*/log.csv")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    run_dir = only_run(runs)
    killed = json.loads((run_dir / "run.json").read_text())
    assert killed["status"] == "running"  # kill -9: nothing could be written

    assert cli("resume", run_dir, "--quiet") == 0
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "completed" and record["epochs_done"] == epochs
    expected = log_columns(run_dir)
    assert [e for e, _ in expected["loss"]] == list(range(1, epochs + 1))

    client = client_for(tmp_path)
    (experiment,) = [e for e in client.search_experiments() if e.name == "digits"]
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_id == killed["tracking"]["mlflow"]["run_id"]
    assert record["tracking"]["mlflow"]["run_id"] == run.info.run_id
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
    for key, points in expected.items():
        assert history(client, run.info.run_id, key) == points, key

    files = wandb_records(run_dir)
    assert len(files) == 2  # the killed process and the resume each wrote one
    ids = {r["run"]["run_id"] for records in files for r in records if r["type"] == "run"}
    assert ids == {killed["tracking"]["wandb"]["run_id"]}
    rows = [row for records in files for row in wandb_history(records)]
    assert [row["_step"] for row in rows] == list(range(1, epochs + 1))
    for key, points in expected.items():
        assert [(row["_step"], row[key]) for row in rows] == points, key


# Earlier in-process runs of this worker set these to their run dirs; a child process that
# inherited them would take them for the user's choice.
OWN_WANDB_DIRS = {var: "" for var in ("WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR",
                                      "WANDB_ARTIFACT_DIR")}


def test_sigterm_marks_the_tracked_runs_interrupted_and_wandb_stays_inside_the_run(tmp_path):
    """SIGTERM mid-run: the MLflow run ends KILLED and the W&B run with a non-zero exit,
    not "running"; and W&B wrote nothing outside the run dir (HOME and TMPDIR in tmp_path)."""
    home, temp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    temp.mkdir()
    path = write_config(tmp_path, tiny_config(fit={"epochs": 50},
                                              tracking=tracking_for(tmp_path)))
    runs = tmp_path / "runs"
    proc = cbrun_process("train", path, "--runs-dir", runs, "--quiet", cwd=tmp_path, env={
        "HOME": str(home), "TMPDIR": str(temp), "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_CONFIG_HOME": str(home / ".config"), "XDG_DATA_HOME": str(home / ".local"),
        "WANDB_SERVICE": "", **OWN_WANDB_DIRS})
    deadline = time.monotonic() + 600  # a guard against a hang on a loaded machine
    while not any(len(p.read_text().splitlines()) >= 2 for p in runs.glob("*/log.csv")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.002)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    run_dir = only_run(runs)
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "interrupted" and record["epochs_done"] < 50
    for tracker in ("mlflow", "wandb"):
        assert record["tracking"][tracker]["status"] == "interrupted", tracker
    run = client_for(tmp_path).get_run(record["tracking"]["mlflow"]["run_id"])
    assert run.info.status == "KILLED"
    (records,) = wandb_records(run_dir)
    assert [r["exit"]["exit_code"] for r in records if r["type"] == "exit"] == [130]

    outside = [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")
               if "wandb" in p.relative_to(tmp_path).as_posix().lower()
               and run_dir not in p.parents and p != run_dir]
    assert outside == []
    assert (run_dir / "wandb" / "cache").is_dir()  # wandb-core's debug log went here


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_server_that_refuses_connections_costs_a_warning_not_the_run(tmp_path, monkeypatch,
                                                                       capfd):
    # Nothing listens on the port; one try, two seconds: the test stays quick.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    uri = f"http://127.0.0.1:{free_port()}"
    config = tiny_config(fit={"epochs": 2}, tracking={"mlflow": {"tracking_uri": uri}})
    path = write_config(tmp_path, config)
    assert cli("train", path, "--runs-dir", tmp_path / "runs", "--quiet") == 0
    err = capfd.readouterr().err
    assert "warning: MLflow tracking failed" in err
    assert "the run goes on without it" in err and "Traceback" not in err

    run_dir = only_run(tmp_path / "runs")
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "completed" and record["epochs_done"] == 2
    entry = record["tracking"]["mlflow"]
    assert entry["tracking_uri"] == uri and entry["run_id"] is None
    assert "Connection" in entry["error"] or "refused" in entry["error"]
    assert entry["unsent"][:3] == ["the run", "params", "epochs 1-2"]
    assert {"final values", "file log.csv", "file config.yaml", "end status"} <= set(
        entry["unsent"])
    assert (run_dir / "model.keras").is_file()


@pytest.mark.parametrize(("tracking", "where", "message"), [
    ({"mlflow": {"tracking_uri": "localhost:5000"}}, "tracking.mlflow.tracking_uri",
     "write 'http://localhost:5000'"),
    ({"mlflow": {"tracking_uri": "htp://example.org"}}, "tracking.mlflow.tracking_uri",
     "did you mean 'http'"),
    ({"mlflow": {"tracking_uri": "sqlite://runs.db"}}, "tracking.mlflow.tracking_uri",
     "three or four slashes"),
    ({"wandb": {"project": "p", "mode": "ofline"}}, "tracking.wandb.mode", "offline"),
    ({"wandb": {"project": "p", "mdoe": "offline"}}, "tracking.wandb.mdoe", "mode"),
    ({"mlflow": {"log_model": "yes"}}, "tracking.mlflow.log_model", "bool"),
])
def test_a_bad_tracking_section_is_refused_before_training(tmp_path, capsys, tracking, where,
                                                           message):
    path = write_config(tmp_path, tiny_config(tracking=tracking))
    code, _, err = cli_output(capsys, "train", path, "--runs-dir", tmp_path / "runs")
    assert code == 2
    assert f"{path}:" in err and where in err and message in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_validate_stays_light_with_tracking(tmp_path):
    path = write_config(tmp_path, tiny_config(tracking=tracking_for(tmp_path)))
    code = ("import sys\nfrom cbrun.cli import _run\n"
            f"code = _run(['validate', {str(path)!r}])\n"
            "heavy = [m for m in ('tensorflow', 'keras', 'mlflow', 'wandb') if m in sys.modules]\n"
            "print(code, heavy)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
                            timeout=120, check=False)
    assert result.stdout.strip().splitlines()[-1] == "0 []", result.stderr


def test_a_missing_package_names_the_extra():
    from cbrun.config.tracking import package_missing

    assert package_missing("mlflow", "mlflow") is None
    assert package_missing("cbrun_no_such_tracker", "mlflow") == (
        "needs the cbrun_no_such_tracker package, which is not installed; install it with "
        "pip install 'cbrun[mlflow]'")


def test_a_store_that_comes_back_gets_the_missing_epochs_on_resume(tmp_path, capfd):
    """The SQLite file's folder is a file while the run trains (a store unreachable at run
    time); once it is a folder, a resume creates the MLflow run and sends every epoch from
    log.csv, then the new one."""
    store = tmp_path / "later"
    store.write_text("not a folder")
    uri = f"sqlite:///{store / 'mlflow.db'}"
    config = tiny_config(fit={"epochs": 2}, tracking={"mlflow": {
        # A new experiment: MLflow's own "Default" keeps artifacts in ./mlruns.
        "tracking_uri": uri, "experiment": "later",
        "artifact_location": str(tmp_path / "artifacts")}})
    path = write_config(tmp_path, config)
    assert cli("train", path, "--runs-dir", tmp_path / "runs", "--quiet") == 0
    assert "warning: MLflow tracking failed" in capfd.readouterr().err
    run_dir = only_run(tmp_path / "runs")
    before = json.loads((run_dir / "run.json").read_text())["tracking"]["mlflow"]
    assert before["unsent"][:3] == ["the run", "params", "epochs 1-2"]

    store.unlink()
    store.mkdir()
    assert cli("resume", run_dir, "--epochs", "3", "--quiet") == 0
    entry = json.loads((run_dir / "run.json").read_text())["tracking"]["mlflow"]
    assert entry["unsent"] == [] and entry["error"] is None
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    for key, points in log_columns(run_dir).items():
        assert history(client, entry["run_id"], key) == points, key
    assert [step for step, _ in history(client, entry["run_id"], "loss")] == [1, 2, 3]
