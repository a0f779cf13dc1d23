"""Tracking: a real MLflow store (SQLite in a temp dir) and W&B offline runs, read back with
their own readers (MlflowClient; wandb-core's transaction-log reader) and compared with the
run's log.csv; a resume after SIGKILL continues the same tracked runs; a tracker that is down
costs a warning, never the run."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import (
    HANG_S,
    cbrun_process,
    cli,
    cli_output,
    only_run,
    read_log,
    tiny_config,
    write_config,
)

from cbrun.run.runguard import check_tree
from tests.helpers.light import run_cbrun

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
             str(file)], capture_output=True, text=True, timeout=HANG_S, check=True)
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
    baseline = record["baseline"]["metrics"]
    assert run.data.metrics["baseline_val_loss"] == baseline["val_loss"]
    assert run.data.tags["cbrun.baseline"] == "always predicting the training class shares"

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
    assert summary["baseline_val_accuracy"] == record["baseline"]["metrics"]["val_accuracy"]
    assert summary["cbrun.status"] == "completed"
    assert any("learning rate 0.01 -> 0.005" in line for line in summary["events"])
    files = {f["path"] for r in records if r["type"] == "files" for f in r["files"]["files"]}
    assert {"config.yaml", "resolved.yaml", "log.csv", "log.png", "model.keras"} <= files
    assert [r["exit"]["exit_code"] for r in records if r["type"] == "exit"] == [0]
    check_tree(run_dir)  # no links W&B made would stop a resume


def test_wandb_epoch_is_the_step(tracked):
    _, run_dir = tracked
    (records,) = wandb_records(run_dir)
    rows = wandb_history(records)
    assert [(row["_step"], row["epoch"]) for row in rows] == [
        (epoch, epoch) for epoch in range(1, EPOCHS + 1)]


def wandb_file_records(file: Path) -> list[dict]:
    import wandb

    reader = Path(wandb.__file__).parent / "bin" / "wandb-core"
    result = subprocess.run(
        [str(reader), "leet", "inspect", "-json", "-no-observability", "-run-file", str(file)],
        capture_output=True, text=True, timeout=HANG_S, check=True)
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def test_a_resume_that_cannot_ask_the_trackers_goes_by_its_count_or_lists_the_epochs(tmp_path):
    """Two epochs sent to both trackers; then W&B's earlier file cannot be read (the resume
    goes by run.json's count: nothing sent again) and MLflow's store opens but fails when
    asked for its metric history (the epochs it may lack are listed as unsent)."""
    path = write_config(tmp_path, tiny_config(fit={"epochs": 2},
                                              tracking=tracking_for(tmp_path)))
    assert cli("train", path, "--runs-dir", tmp_path / "runs", "--quiet") == 0
    run_dir = only_run(tmp_path / "runs")
    (first,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    first.write_bytes(b"damaged")
    import sqlite3

    with sqlite3.connect(tmp_path / "mlflow.db") as store:
        store.execute("alter table metrics rename to metrics_gone")

    assert cli("resume", run_dir, "--epochs", "3", "--quiet") == 0
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "completed" and record["epochs_done"] == 3
    wandb_entry, mlflow_entry = record["tracking"]["wandb"], record["tracking"]["mlflow"]
    assert wandb_entry["unsent"] == [] and wandb_entry["last_epoch"] == 3
    (second,) = [f for f in run_dir.glob("wandb/offline-run-*/run-*.wandb") if f != first]
    assert [row["_step"] for row in wandb_history(wandb_file_records(second))] == [3]
    # The table is gone (or, MLflow having made its tables again when a new process opened
    # the store, the one it made lacks a column).
    assert re.search(r"no such (table|column)", mlflow_entry["error"]), mlflow_entry["error"]
    assert mlflow_entry["unsent"][:2] == ["epochs 1-3", "final values"]


def test_sigkill_and_resume_continue_the_same_tracked_runs(tmp_path):
    """Killed in epoch 3 or later (or while saving epoch 2), once the tracked runs are open:
    the resume continues the same MLflow and W&B runs, and each epoch is there exactly once,
    equal to log.csv."""
    config = tiny_config(fit={"epochs": 60}, tracking=tracking_for(tmp_path))
    path = write_config(tmp_path, config)
    runs = tmp_path / "runs"
    # Its own W&B service: this test process's (WANDB_SERVICE, set by an earlier in-process
    # run) would outlive the kill and still hold the run's stream when the resume asks.
    proc = cbrun_process("train", path, "--runs-dir", runs, "--quiet",
                         env={"WANDB_SERVICE": "", **OWN_WANDB_DIRS})
    deadline = time.monotonic() + HANG_S  # only a hang
    # Epoch 2 done, and the tracked runs opened (their process opens them while training
    # goes on) and recorded: the resume must continue those.
    while not any(len(p.read_text().splitlines()) >= 3 and _opened(p.parent)
                  for p in runs.glob("*/log.csv")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=HANG_S)
    run_dir = only_run(runs)
    killed = json.loads((run_dir / "run.json").read_text())
    assert killed["status"] == "running"  # kill -9: nothing could be written

    epochs = killed["epochs_done"] + 2  # the state may be one epoch ahead of run.json
    assert cli("resume", run_dir, "--epochs", str(epochs), "--quiet") == 0
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


def _opened(run_dir: Path) -> bool:
    try:
        tracking = json.loads((run_dir / "run.json").read_text())["tracking"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return bool(tracking and all((tracking.get(name) or {}).get("run_id")
                                 for name in ("mlflow", "wandb")))


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
    deadline = time.monotonic() + HANG_S  # only a hang
    while not any(len(p.read_text().splitlines()) >= 2 for p in runs.glob("*/log.csv")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.002)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=HANG_S)
    assert proc.returncode == 75, err
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


def unwritable_folder(tmp_path: Path) -> Path:
    """A folder this process cannot create a file in: read-only for a user; for root, whom
    permissions do not stop, /sys (the kernel refuses new files there)."""
    if os.geteuid() == 0:
        return Path("/sys")
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    return folder


def _folder_as_db(tmp_path):
    (tmp_path / "store" / "mlflow.db").mkdir(parents=True)
    return f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}", "is a folder"


def _file_as_folder(tmp_path):
    (tmp_path / "store").write_text("a file")
    return f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}", "is a file, not a folder"


def _unwritable(tmp_path):
    return f"sqlite:///{unwritable_folder(tmp_path) / 'mlflow.db'}", "cannot write in"


def _not_a_database(tmp_path):
    (tmp_path / "notes.db").write_text("my notes")
    return f"sqlite:///{tmp_path / 'notes.db'}", "is not an SQLite database"


def _damaged_database(tmp_path):
    (tmp_path / "damaged.db").write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 8)
    return f"sqlite:///{tmp_path / 'damaged.db'}", "cannot open the SQLite store"


def _missing_driver(tmp_path):
    return "mysql://127.0.0.1/mlflow", "needs the MySQLdb package"


@pytest.mark.parametrize("store", [_folder_as_db, _file_as_folder, _unwritable, _not_a_database,
                                   _damaged_database, _missing_driver])
def test_a_store_that_cannot_be_opened_is_refused_before_training(tmp_path, capsys, store):
    """Found on disk (or by the missing driver) by validate and train: no run directory, no
    minute and a half of MLflow's retries per run."""
    uri, message = store(tmp_path)
    path = write_config(tmp_path, tiny_config(tracking={"mlflow": {"tracking_uri": uri}}))
    for command in (("validate", path), ("train", path, "--runs-dir", tmp_path / "runs")):
        code, out, err = cli_output(capsys, *command)
        said = out + err  # validate reports on stdout, train on stderr
        assert code == 2, said
        assert f"{path}:" in said and "tracking.mlflow.tracking_uri" in said and message in said
    assert not (tmp_path / "runs").exists()


def test_a_folder_store_mlflow_refuses_is_refused_before_training(tmp_path, capsys,
                                                                  monkeypatch):
    from cbrun.tracking.stores import FILE_STORE_VAR, _file_store_refused

    monkeypatch.delenv(FILE_STORE_VAR, raising=False)
    if _file_store_refused() is None:
        pytest.skip("this MLflow still keeps runs in folders without being asked")
    path = write_config(tmp_path, tiny_config(tracking={"mlflow": {
        "tracking_uri": f"file:{tmp_path / 'mlruns'}"}}))
    code, err, _ = cli_output(capsys, "validate", path)
    assert code == 2 and f"unless {FILE_STORE_VAR}=true" in err and "sqlite:///" in err
    # Allowed, it must still be a folder.
    monkeypatch.setenv(FILE_STORE_VAR, "true")
    (tmp_path / "mlruns").write_text("a file")
    code, err, _ = cli_output(capsys, "validate", path)
    assert code == 2 and "a folder store is a folder" in err
    (tmp_path / "mlruns").unlink()
    assert cli_output(capsys, "validate", path).code == 0


def test_mlflow_tracking_uri_from_the_environment_is_checked_too(tmp_path, capsys,
                                                                 monkeypatch):
    (tmp_path / "mlflow.db").mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    path = write_config(tmp_path, tiny_config(tracking={"mlflow": {"experiment": "digits"}}))
    code, err, _ = cli_output(capsys, "validate", path)
    assert code == 2 and "tracking.mlflow: MLFLOW_TRACKING_URI" in err and "is a folder" in err


def test_a_database_server_that_fails_is_tried_once(tmp_path, capfd):
    """A server that takes the connection and hangs up: MLflow would open its engine ten
    times over ~100 s; the run tries once, warns once and goes on."""
    pytest.importorskip("psycopg")
    server = HangingUp()
    with server as port:
        uri = f"postgresql+psycopg://cbrun@127.0.0.1:{port}/mlflow"
        path = write_config(tmp_path, tiny_config(fit={"epochs": 1},
                                                  tracking={"mlflow": {"tracking_uri": uri}}))
        assert cli("train", path, "--runs-dir", tmp_path / "runs", "--quiet") == 0
    # cbrun's one connection, then one try of the driver's (with and without SSL).
    assert server.accepted <= 3, server.accepted
    err = capfd.readouterr().err
    assert err.count("warning: MLflow tracking failed") == 1, err
    assert "retried" not in err and "Traceback" not in err
    record = json.loads((only_run(tmp_path / "runs") / "run.json").read_text())
    assert record["status"] == "completed"
    assert record["tracking"]["mlflow"]["unsent"][:3] == ["the run", "params", "epoch 1"]


class HangingUp:
    """A server that takes each connection and closes it at once: reachable, never working."""

    accepted = 0

    def __enter__(self) -> int:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen()
        self.server.settimeout(0.2)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        return self.server.getsockname()[1]

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                self.server.accept()[0].close()
            except OSError:
                continue
            self.accepted += 1

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()
        self.server.close()


@pytest.mark.parametrize("server", ["refuses", "hangs up"])
def test_a_tracking_server_that_fails_at_the_start_costs_one_line_not_the_run(tmp_path,
                                                                              server):
    """Refused: wandb.init would wait 90 s and MLflow retry for ~100 s; the run asks each
    once (one connection attempt, before MLflow's retries), warns once per tracker and trains
    on. Hanging up (wandb's own wait cut to 10 s): its init fails, and what wandb-core left
    in the run (a link to its log) must not stop the run. A process of its own: W&B keeps
    its settings (the server's address) for the whole process."""
    home = tmp_path / "home"
    home.mkdir()
    tracking = {"wandb": {"project": "p"}}
    refused = free_port()  # nothing listens on it
    uri = f"http://127.0.0.1:{refused}"
    if server == "refuses":
        tracking["mlflow"] = {"tracking_uri": uri}
    path = write_config(tmp_path, tiny_config(fit={"epochs": 2}, tracking=tracking))
    with HangingUp() as hanging:
        port = refused if server == "refuses" else hanging
        proc = cbrun_process("train", path, "--runs-dir", tmp_path / "runs", "--quiet", env={
            "HOME": str(home), "WANDB_BASE_URL": f"http://127.0.0.1:{port}",
            "WANDB_API_KEY": "k" * 40, "WANDB_INIT_TIMEOUT": "10", "WANDB_SERVICE": "",
            **OWN_WANDB_DIRS})
        _, err = proc.communicate(timeout=HANG_S)
    assert proc.returncode == 0, err
    warnings = [line for line in err.splitlines() if "W&B tracking failed" in line]
    assert len(warnings) == 1, err
    failed = [line for line in err.splitlines() if "tracking failed" in line]
    assert len(failed) == (2 if server == "refuses" else 1), err
    run_dir = only_run(tmp_path / "runs")
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "completed" and record["epochs_done"] == 2
    assert (run_dir / "model.keras").is_file()
    assert record["tracking"]["wandb"]["unsent"][:2] == ["the run", "params"]
    check_tree(run_dir)
    if server == "hangs up":
        return
    assert "the connection was refused" in warnings[0]
    assert err.count("warning: MLflow tracking failed") == 1, err
    assert "the run goes on without it" in err and "Traceback" not in err
    assert "Max retries" not in err  # MLflow's retries never started
    entry = record["tracking"]["mlflow"]
    assert entry["tracking_uri"] == uri and entry["run_id"] is None
    assert entry["error"] == (f"nothing listens at 127.0.0.1:{refused} ({uri}): "
                              "the connection was refused")
    assert entry["unsent"][:3] == ["the run", "params", "epochs 1-2"]
    assert {"final values", "file log.csv", "file config.yaml", "end status"} <= set(
        entry["unsent"])


BREAK_STORE = """
import sqlite3
import time

def break_store(epoch, logs, db):
    if epoch == 2:  # the end of epoch 3, before the trackers hear of it
        # Once the store holds epoch 1 (handed over by epoch 2's end at the latest, once
        # its state was written; its tracking process sends while training goes on)
        deadline = time.monotonic() + 1200  # only a hang
        while time.monotonic() < deadline:
            try:
                with sqlite3.connect(db) as store:
                    if store.execute("select count(*) from metrics where step = 1").fetchone()[0]:
                        break
            except sqlite3.OperationalError:
                pass  # not made yet
            time.sleep(0.01)
        with sqlite3.connect(db) as store:
            store.execute("alter table metrics rename to metrics_gone")
"""


def test_a_store_that_breaks_mid_run_costs_a_warning_not_the_run(tmp_path, capfd):
    db = tmp_path / "mlflow.db"
    (tmp_path / "break_store.py").write_text(BREAK_STORE)
    config = tiny_config(fit={"epochs": 3}, tracking={"mlflow": {
        "tracking_uri": f"sqlite:///{db}", "experiment": "digits",
        "artifact_location": str(tmp_path / "artifacts")}},
        callbacks=[{"type": "LambdaCallback", "on_epoch_end": "break_store:break_store",
                    "params": {"db": str(db)}}])
    path = write_config(tmp_path, config)
    assert cli("train", path, "--runs-dir", tmp_path / "runs", "--quiet") == 0
    err = capfd.readouterr().err
    assert err.count("warning: MLflow tracking failed") == 1 and "Traceback" not in err
    assert " mlflow.store" not in err  # MLflow's own log of it stays shut
    run_dir = only_run(tmp_path / "runs")
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "completed" and (run_dir / "model.keras").is_file()
    entry = record["tracking"]["mlflow"]
    # Epoch 2 reached the store before it broke, or not (its state write and the tracking
    # process ran beside the training): either way nothing after it did, and it is listed.
    last = entry["last_epoch"]
    assert last in (1, 2) and "no such table" in entry["error"]
    assert entry["unsent"][:2] == [{1: "epochs 2-3", 2: "epoch 3"}[last], "final values"]


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
    result = run_cbrun(["validate", path])
    assert result.codes == [0] and result.heavy == [], result.commands
    assert not result.imported("mlflow") and not result.imported("wandb")


def test_a_missing_package_names_the_extra():
    from cbrun.config.tracking import package_missing

    assert package_missing("mlflow", "mlflow") is None
    assert package_missing("cbrun_no_such_tracker", "mlflow") == (
        "needs the cbrun_no_such_tracker package, which is not installed; install it with "
        "pip install 'cbrun[mlflow]'")


def test_a_store_that_comes_back_gets_the_missing_epochs_on_resume(tmp_path, capfd,
                                                                  monkeypatch):
    """MLflow's own default store (mlflow.db in the current folder) is not the config's, so
    validate leaves it; while it is a folder the run finds it broken at once (one line, not
    ~100 s of MLflow's retries) and trains on. Once it can be made, a resume creates the
    MLflow run and sends every epoch from log.csv, then the new one."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "mlflow.db"
    store.mkdir()
    config = tiny_config(fit={"epochs": 2}, tracking={"mlflow": {"experiment": "later"}})
    path = write_config(tmp_path, config)
    assert cli("train", path, "--runs-dir", tmp_path / "runs", "--quiet") == 0
    err = capfd.readouterr().err
    warnings = [line for line in err.splitlines() if "tracking failed" in line]
    assert len(warnings) == 1 and "is a folder" in warnings[0], err
    assert "retried" not in err and "Traceback" not in err
    run_dir = only_run(tmp_path / "runs")
    before = json.loads((run_dir / "run.json").read_text())["tracking"]["mlflow"]
    assert before["unsent"][:3] == ["the run", "params", "epochs 1-2"]

    store.rmdir()
    assert cli("resume", run_dir, "--epochs", "3", "--quiet") == 0
    entry = json.loads((run_dir / "run.json").read_text())["tracking"]["mlflow"]
    assert entry["unsent"] == [] and entry["error"] is None
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{store}")
    for key, points in log_columns(run_dir).items():
        assert history(client, entry["run_id"], key) == points, key
    assert [step for step, _ in history(client, entry["run_id"], "loss")] == [1, 2, 3]


def test_a_relative_store_is_next_to_the_config_whatever_folder_trains_or_resumes(
        tmp_path, monkeypatch):
    """The config in folder B names `sqlite:///stores/mlflow.db`: trained from folder A and
    resumed from folder C, there is one store, in B, and the resume continues the same MLflow
    run (before, each current folder had its own store, and the resume failed with `Run with
    id=... not found`). Nothing lands in A or C, W&B's files included. A run.json of an older
    cbrun, which recorded the URI as written, resumes as it did then: from the current
    folder."""
    from mlflow import MlflowClient

    a, b, c = (tmp_path / name for name in "ABC")
    for folder in (a, b, c):
        folder.mkdir()
    config = tiny_config(fit={"epochs": 2}, tracking={
        "mlflow": {"tracking_uri": "sqlite:///stores/mlflow.db", "experiment": "digits",
                   "artifact_location": "artifacts"},
        "wandb": {"project": "cbrun-tests", "mode": "offline"}})
    path = write_config(b, config)
    runs = tmp_path / "runs"
    monkeypatch.chdir(a)
    assert cli("train", path, "--runs-dir", runs, "--quiet") == 0
    run_dir = only_run(runs)
    store = b / "stores" / "mlflow.db"
    first = json.loads((run_dir / "run.json").read_text())["tracking"]["mlflow"]
    assert first["tracking_uri"] == f"sqlite:///{store}" and first["unsent"] == []

    monkeypatch.chdir(c)
    assert cli("resume", run_dir, "--epochs", "3", "--quiet") == 0
    entry = json.loads((run_dir / "run.json").read_text())["tracking"]["mlflow"]
    assert entry["run_id"] == first["run_id"] and entry["error"] is None
    assert entry["unsent"] == [] and entry["tracking_uri"] == first["tracking_uri"]
    client = MlflowClient(tracking_uri=f"sqlite:///{store}")
    assert [step for step, _ in history(client, entry["run_id"], "loss")] == [1, 2, 3]
    assert str(b / "artifacts") in client.get_experiment_by_name("digits").artifact_location
    assert (b / "artifacts").is_dir()
    assert list(a.iterdir()) == [] and list(c.iterdir()) == []

    # As an older cbrun left it: the URI as written, the store where the current folder was.
    record = json.loads((run_dir / "run.json").read_text())
    record["tracking"]["mlflow"]["tracking_uri"] = "sqlite:///stores/mlflow.db"
    (run_dir / "run.json").write_text(json.dumps(record))
    (b / "stores").rename(a / "stores")
    monkeypatch.chdir(a)
    assert cli("resume", run_dir, "--epochs", "4", "--quiet") == 0
    entry = json.loads((run_dir / "run.json").read_text())["tracking"]["mlflow"]
    assert entry["run_id"] == first["run_id"] and entry["error"] is None
    assert entry["tracking_uri"] == "sqlite:///stores/mlflow.db"
    client = MlflowClient(tracking_uri=f"sqlite:///{a / 'stores' / 'mlflow.db'}")
    assert [step for step, _ in history(client, entry["run_id"], "loss")] == [1, 2, 3, 4]
    assert not (b / "stores").exists()


def test_validate_checks_a_relative_store_where_the_run_will_open_it(tmp_path, capsys,
                                                                    monkeypatch):
    """Next to the config, not in the current folder."""
    (tmp_path / "config" / "mlflow.db").mkdir(parents=True)
    path = write_config(tmp_path / "config", tiny_config(tracking={"mlflow": {
        "tracking_uri": "sqlite:///mlflow.db"}}))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    code, out, _ = cli_output(capsys, "validate", path)
    assert code == 2 and f"the SQLite store {tmp_path / 'config' / 'mlflow.db'} is a folder" in out


HOLD_TRACKER = """
import os
import signal
from pathlib import Path

def hold(epoch, logs, marker):
    if epoch == 0:  # the end of epoch 1: the tracking process stops, training goes on
        children = set()
        for task in Path(f"/proc/{os.getpid()}/task").iterdir():
            children.update((task / "children").read_text().split())
        held = [pid for pid in children
                if b"cbrun.tracking.child" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        for pid in held:
            os.kill(int(pid), signal.SIGSTOP)
        Path(marker).write_text(" ".join(held))
"""


def test_training_goes_on_while_the_tracker_is_held_and_every_epoch_arrives(tmp_path):
    """The tracking process is stopped (SIGSTOP) at the end of epoch 1 and let go only once
    every epoch is in log.csv: training never waited for it, and once it goes on the store
    holds every epoch, the last one included, and the finished run."""
    epochs = 4
    marker = tmp_path / "held.txt"
    (tmp_path / "hold_tracker.py").write_text(HOLD_TRACKER)
    config = tiny_config(fit={"epochs": epochs}, tracking={"mlflow": {
        "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": "digits",
        "artifact_location": str(tmp_path / "artifacts")}},
        callbacks=[{"type": "LambdaCallback", "on_epoch_end": "hold_tracker:hold",
                    "params": {"marker": str(marker)}}])
    path = write_config(tmp_path, config)
    runs = tmp_path / "runs"
    seen: dict[str, object] = {}
    ended = threading.Event()  # the run ended before all its epochs (it failed): let go

    def release() -> None:
        deadline = time.monotonic() + HANG_S  # only a hang: training that waited
        while time.monotonic() < deadline and not ended.is_set():
            logs = list(runs.glob("*/log.csv"))
            if marker.exists() and logs and len(logs[0].read_text().splitlines()) > epochs:
                seen["trained while held"] = True
                break
            time.sleep(0.01)
        for pid in marker.read_text().split() if marker.exists() else []:
            os.kill(int(pid), signal.SIGCONT)

    watcher = threading.Thread(target=release)
    watcher.start()
    try:
        code = cli("train", path, "--runs-dir", runs, "--quiet")
    finally:
        ended.set()
        watcher.join()
    assert code == 0
    assert marker.read_text().split(), "no tracking process to hold"
    assert seen.get("trained while held")
    run_dir = only_run(runs)
    entry = json.loads((run_dir / "run.json").read_text())["tracking"]["mlflow"]
    assert entry["unsent"] == [] and entry["error"] is None and entry["last_epoch"] == epochs
    client = client_for(tmp_path)
    assert client.get_run(entry["run_id"]).info.status == "FINISHED"
    for key, points in log_columns(run_dir).items():
        assert history(client, entry["run_id"], key) == points, key
    # Epochs 1 and 2 (handed over by epoch 3's end) waited in its queue while it was held:
    # they went to the store in one log_batch (one timestamp), not one call each.
    stamps = {m.step: m.timestamp for m in client.get_metric_history(entry["run_id"], "loss")}
    assert stamps[1] == stamps[2], stamps


def test_a_tracker_that_answers_nothing_costs_the_end_a_bounded_wait_and_lists_the_rest(
        tmp_path, monkeypatch):
    """The tracking process never answers (stopped): every epoch is handed over at once,
    the items it cannot take (its queue full) and those still in flight when the end stops
    waiting are listed as unsent, with one warning each."""
    from cbrun.config.tracking import TrackingConfig
    from cbrun.run.record import RunRecord
    from cbrun.tracking import sender
    from cbrun.tracking.view import TrackingView

    monkeypatch.setattr(sender, "QUEUE_ITEMS", 2)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    record = RunRecord.new(run_dir, "held", 1, 8, None, [], tmp_path, [])
    (run_dir / "log.csv").write_text("epoch,loss\n" + "".join(f"{e},0.5\n" for e in range(8)))
    config = TrackingConfig.model_validate({"mlflow": {
        "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"}})
    said: list[str] = []
    view = TrackingView(config, run_dir, record, {"fit.epochs": "8"}, warn=said.append,
                        stall=1.0)
    os.kill(view.sender.process.pid, signal.SIGSTOP)
    try:
        view.start(0)
        # Big enough that the pipe to the stopped process fills after an epoch or two.
        metrics = {f"metric_{i}": float(i) for i in range(3000)}
        for epoch in range(1, 9):
            view.epoch(epoch, metrics)
        view.finish("completed", None, None)
    finally:
        if view.sender.process.poll() is None:  # the test failed before the end: no orphan
            view.sender.process.kill()

    assert view.sender.process.poll() is not None  # ended, not left behind
    entry = json.loads((run_dir / "run.json").read_text())["tracking"]["mlflow"]
    assert entry["unsent"] == ["the run", "params", "epochs 1-8", "final values",
                               "file log.csv", "file log.png", "end status"]
    assert "answered nothing for 1 s at the run's end" in entry["error"]
    assert [line for line in said if "items behind" in line] == [(
        "warning: the trackers are 2 items behind; what finds their queue full is not "
        "sent, and run.json lists it under tracking.<name>.unsent")]
    assert len([line for line in said if "MLflow tracking failed" in line]) == 1


CRASH_TRACKER = """
import os
import signal
from pathlib import Path

def crash(epoch, logs):
    if epoch == 0:  # the end of epoch 1: the tracking process dies of a fatal signal
        children = set()
        for task in Path(f"/proc/{os.getpid()}/task").iterdir():
            children.update((task / "children").read_text().split())
        for pid in children:
            if b"cbrun.tracking.child" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(int(pid), signal.SIGSEGV)
"""


def test_a_tracking_process_that_crashes_leaves_its_last_words_in_the_run(tmp_path, capfd):
    """The tracking process dies of a segmentation fault mid-run: the run goes on, the
    warning says how it ended and what it said last, and its whole output (the Python stack
    at the crash) is in the run directory's tracking.log."""
    (tmp_path / "crash_tracker.py").write_text(CRASH_TRACKER)
    config = tiny_config(fit={"epochs": 3}, tracking={"mlflow": {
        "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": "digits",
        "artifact_location": str(tmp_path / "artifacts")}},
        callbacks=[{"type": "LambdaCallback", "on_epoch_end": "crash_tracker:crash"}])
    path = write_config(tmp_path, config)
    assert cli("train", path, "--runs-dir", tmp_path / "runs", "--quiet") == 0
    err = capfd.readouterr().err
    run_dir = only_run(tmp_path / "runs")
    log = run_dir / "tracking.log"
    warnings = [line for line in err.splitlines() if "MLflow tracking failed" in line]
    assert warnings == [(
        f"warning: MLflow tracking failed (the tracking process ended (exit code "
        f"{-signal.SIGSEGV}): Fatal Python error: Segmentation fault (its output is in "
        f"{log})); the run goes on without it, and run.json lists what it did not get under "
        "tracking.mlflow.unsent")], err
    assert "cbrun/tracking/child.py" in log.read_text()  # where it was when it died
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "completed"
    entry = record["tracking"]["mlflow"]
    assert "Segmentation fault" in entry["error"] and "end status" in entry["unsent"]


def test_a_tracking_process_with_nothing_to_say_leaves_no_log(tracked):
    _, run_dir = tracked
    assert not (run_dir / "tracking.log").exists()


def _schema(db: Path) -> list[tuple]:
    import sqlite3

    with sqlite3.connect(db) as store:
        # Each statement's clauses sorted: MLflow's own migrations write a table's
        # constraints in an order that varies from one store to the next.
        return (sorted((kind, name, sorted(part.strip(" ,") for part in (sql or "").split("\n")))
                       for kind, name, sql in store.execute(
                           "select type, name, sql from sqlite_master")),
                store.execute("select version_num from alembic_version").fetchall(),
                store.execute("pragma journal_mode").fetchall())


def test_a_new_sqlite_store_is_the_one_mlflow_makes_and_nothing_else(tracked, tmp_path):
    """A run's new SQLite store is made beside it and put in place whole: the same tables,
    schema version and journal as a store MLflow makes itself, the mode the umask gives a
    new file, and nothing else left in its folder."""
    from mlflow import MlflowClient

    folder, _ = tracked
    made = folder / "mlflow.db"
    reference = tmp_path / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{reference}").search_experiments()
    assert _schema(made) == _schema(reference)
    assert made.stat().st_mode & 0o777 == reference.stat().st_mode & 0o777
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []


def test_an_mlflow_only_run_rewrites_run_json_for_an_epoch_only_when_its_entry_changed(
        tmp_path):
    """MLflow's resume asks the store which epochs it holds, so an epoch whose only news is
    the count of epochs taken leaves run.json as it was (no fsync'd write on the training
    thread); the run id, once it comes, and the end are written."""
    from cbrun.config.tracking import TrackingConfig
    from cbrun.run.record import RunRecord
    from cbrun.tracking.view import TrackingView

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    record = RunRecord.new(run_dir, "quiet", 1, 4, None, [], tmp_path, [])
    (run_dir / "log.csv").write_text("epoch,loss\n" + "".join(f"{e},0.5\n" for e in range(4)))
    config = TrackingConfig.model_validate({"mlflow": {
        "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "artifact_location": str(tmp_path / "artifacts")}})
    view = TrackingView(config, run_dir, record, {"fit.epochs": "4"})
    run_json = run_dir / "run.json"

    def written() -> int:  # a new file each write (written beside it, then renamed)
        return run_json.stat().st_ino

    try:
        view.start(0)
        assert view.sender.wait(HANG_S)
        view.epoch(1, {"loss": 0.5})  # the run's id arrives: written
        opened = written()
        assert json.loads(run_json.read_text())["tracking"]["mlflow"]["run_id"]
        for epoch in (2, 3, 4):
            assert view.sender.wait(HANG_S)
            view.epoch(epoch, {"loss": 0.5})
            assert written() == opened, f"run.json rewritten at epoch {epoch}"
        view.finish("completed", None, None)
    finally:
        if view.sender.process.poll() is None:
            view.sender.process.kill()
    entry = json.loads(run_json.read_text())["tracking"]["mlflow"]
    assert entry["last_epoch"] == 4 and entry["unsent"] == [] and entry["status"] == "completed"
    client = client_for(tmp_path)
    assert [s for s, _ in history(client, entry["run_id"], "loss")] == [1, 2, 3, 4]


def test_an_epoch_reaches_mlflow_only_once_its_state_is_on_disk(tmp_path):
    """The state is written beside the next epoch (a thread of its own): the run is stopped
    (SIGSTOP) inside epoch 4's state write, and MLflow holds no epoch that the states on
    disk lack; killed there and resumed, each epoch is in MLflow exactly once, equal to
    log.csv."""
    from cbrun.state.files import FAULT_ENV

    config = tiny_config(fit={"epochs": 60}, tracking={"mlflow": {
        "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": "digits",
        "artifact_location": str(tmp_path / "artifacts")}})
    path = write_config(tmp_path, config)
    runs = tmp_path / "runs"
    proc = cbrun_process("train", path, "--runs-dir", runs, "--quiet",
                         env={FAULT_ENV: "4:SIGSTOP"})
    try:
        deadline = time.monotonic() + HANG_S  # only a hang
        while Path(f"/proc/{proc.pid}/stat").read_text().rpartition(")")[2].split()[0] != "T":
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.01)
        run_dir = only_run(runs)
        client = client_for(tmp_path)
        # Epochs 1 and 2 were on disk when epoch 3 ended: the tracking process (still
        # running) takes them; then whatever else it was handed lands too.
        while True:
            run_id = json.loads((run_dir / "run.json").read_text())["tracking"]["mlflow"][
                "run_id"]
            steps = {s for s, _ in history(client, run_id, "loss")} if run_id else set()
            if {1, 2} <= steps:
                break
            assert time.monotonic() < deadline, steps
            time.sleep(0.05)
        time.sleep(2)
        on_disk = json.loads((run_dir / "run.json").read_text())["epochs_done"]
        assert on_disk == 3  # epoch 4's state is the one stopped halfway
        steps = {s for s, _ in history(client, run_id, "loss")}
        assert steps <= set(range(1, on_disk + 1)), steps
    finally:
        proc.kill()
        proc.communicate(timeout=HANG_S)

    assert cli("resume", run_dir, "--epochs", "6", "--quiet") == 0
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "completed" and record["epochs_done"] == 6
    entry = record["tracking"]["mlflow"]
    assert entry["run_id"] == run_id and entry["unsent"] == [] and entry["last_epoch"] == 6
    for key, points in log_columns(run_dir).items():
        assert history(client, run_id, key) == points, key


def test_a_dear_send_holds_the_epochs_after_it_for_one_send(tmp_path, monkeypatch):
    """The tracking process itself, fed through pipes as the training process feeds it:
    after a send, the epochs that come wait until that send's processor time is a
    SEND_SHARE of the time since (every send is dear here), and go to the store in one
    log_batch (one timestamp); the run's end ends the wait at once."""
    from multiprocessing.connection import Connection

    from cbrun.config.tracking import TrackingConfig
    from cbrun.run.record import MlflowRun
    from cbrun.tracking import child

    monkeypatch.setattr(child, "LINGER_SECONDS", 0.0)
    monkeypatch.setattr(child, "SEND_SHARE", 1e-9)
    monkeypatch.setattr(child, "MAX_LINGER_SECONDS", HANG_S)
    commands_read, commands_write = os.pipe()
    replies_read, replies_write = os.pipe()
    serving = threading.Thread(target=child._serve,
                               args=([str(commands_read), str(replies_write)],), daemon=True)
    serving.start()
    out = Connection(commands_write, readable=False)
    back = Connection(replies_read, writable=False)
    config = TrackingConfig.model_validate({"mlflow": {
        "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": "pace"}})
    out.send(("setup", config, tmp_path, tmp_path, {"mlflow": MlflowRun()}))
    fields: dict = {}

    def done(seq: int) -> None:
        while True:
            assert back.poll(HANG_S), f"no answer for item {seq}"
            answer = back.recv()
            assert answer[0] in ("result", "done"), answer
            if answer[0] == "result":
                assert answer[3] is True, answer
                fields.update(answer[4])
            elif answer[1] == seq:
                return

    out.send((1, "open", "the run", ()))
    done(1)
    out.send((2, "epoch", 1, (1, {"loss": 1.0})))
    done(2)  # nothing sent before it: sent after LINGER_SECONDS
    out.send((3, "epoch", 2, (2, {"loss": 0.9})))
    time.sleep(0.3)
    out.send((4, "epoch", 3, (3, {"loss": 0.8})))
    out.send((5, "end", "end status", ("completed",)))
    done(5)
    out.send(("close",))
    assert back.poll(HANG_S) and back.recv() == ("closed",)
    serving.join(HANG_S)
    stamps = {m.step: m.timestamp
              for m in client_for(tmp_path).get_metric_history(fields["run_id"], "loss")}
    assert stamps[2] == stamps[3] != stamps[1], stamps


def test_the_pace_of_sends_follows_what_the_last_one_cost():
    """After a send that took c seconds of the tracking process's processor time, the next
    waits until c / SEND_SHARE has passed (at most MAX_LINGER_SECONDS after its first
    epoch came); a cheap send or a slow epoch waits LINGER_SECONDS, as before."""
    from cbrun.tracking.child import LINGER_SECONDS, MAX_LINGER_SECONDS, SEND_SHARE, Pace

    now = [100.0]
    used = [7.0]
    pace = Pace(clock=lambda: now[0], used=lambda: used[0])
    assert pace.send_at(100.0) == 100.0 + LINGER_SECONDS  # nothing sent yet
    with pace.sending():
        used[0] += 0.013  # an SQLite store's log_batch
    assert pace.send_at(100.2) == pytest.approx(100.0 + 0.013 / SEND_SHARE)
    assert pace.send_at(100.0 + 0.013 / SEND_SHARE + 3) == pytest.approx(
        100.0 + 0.013 / SEND_SHARE + 3 + LINGER_SECONDS)  # epochs slower than the pace
    with pace.sending():
        used[0] += 0.001  # a folder store's
    assert pace.send_at(100.2) == pytest.approx(100.2 + LINGER_SECONDS)
    with pace.sending():
        used[0] += 10.0  # a send that took long: the page lags the run no more than this
    assert pace.send_at(100.2) == pytest.approx(100.2 + MAX_LINGER_SECONDS)
