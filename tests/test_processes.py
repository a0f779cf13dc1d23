"""One run in two processes (`distribute: data_parallel`, backend: jax, CPU collectives over
gloo) started by the local launcher (`--processes 2`): the same run as one process trains,
the same weights in both processes, exact resume after the whole job is killed, and a
process that fails ends the job with one message naming it.

All the jobs share one small model (the digits MLP of conftest) and start in one fixture."""

from __future__ import annotations

import hashlib
import json
import signal
import time

import numpy as np
import pytest
from conftest import (
    HANG_S,
    cbrun_process,
    cli_output,
    jax_cache,
    only_run,
    tiny_config,
    write_config,
)

from cbrun.state.files import FAULT_AT_BATCH_ENV, FAULT_ENV, FAULT_PROCESS_ENV

# A loader whose process 1 cannot read its data (a disk not mounted on one machine).
FAILING_LOADER = '''
import os

import numpy as np


def load():
    if os.environ.get("CBRUN_PROCESS_ID") == "1":
        raise OSError("disk /data/shard1 is not mounted")
    x = np.random.default_rng(0).normal(size=(256, 8)).astype("float32")
    return {"train": (x, (x.sum(axis=1) > 0).astype("int32"))}
'''


def job(*args, env=None) -> dict:
    started = time.monotonic()
    proc = cbrun_process(*args, env=env)
    out, err = proc.communicate(timeout=HANG_S)
    return {"code": proc.returncode, "out": out, "err": err,
            "seconds": time.monotonic() - started}


@pytest.fixture(scope="module")
def jobs(tmp_path_factory):
    root = tmp_path_factory.mktemp("processes")
    scratch = root / "tmp"  # where process 1 of the uninterrupted job writes
    scratch.mkdir()
    env = jax_cache(root)
    path = write_config(root, tiny_config(name="dp", backend="jax",
                                          distribute="data_parallel", fit={"epochs": 4}))
    failing = write_config(root, tiny_config(
        name="failing", backend="jax", distribute="data_parallel",
        data={"source": "python", "function": "failing_data:load", "batch_size": 64},
        model={"input_shape": [8], "layers": [{"type": "Dense", "units": 2,
                                               "activation": "softmax"}]}), "failing.yaml")
    (root / "failing_data.py").write_text(FAILING_LOADER)
    out = {"root": root, "scratch": scratch}
    out["one"] = job("train", path, "--runs-dir", root / "one", "-q", env=jax_cache(root))
    out["two"] = job("train", path, "--runs-dir", root / "two", "-q", "--processes", "2",
                     env={**env, "TMPDIR": str(scratch)})
    # Every process of the job SIGKILLed while it writes epoch 3's state: the newest whole
    # state is epoch 2's.
    out["killed"] = job("train", path, "--runs-dir", root / "killed", "-q", "--processes",
                        "2", env={**env, FAULT_ENV: "3"})
    out["resumed"] = (job("resume", only_run(root / "killed"), "-q", "--processes", "2",
                          env=env) if (root / "killed").is_dir() else None)
    out["failing"] = job("train", failing, "--runs-dir", root / "failing", "--processes",
                         "2", env=env)
    # Process 1 alone SIGKILLed after batch 8 of epoch 3: no word from it.
    out["silent"] = job("train", path, "--runs-dir", root / "silent", "--processes", "2",
                        env={**env, FAULT_AT_BATCH_ENV: "2:7", FAULT_PROCESS_ENV: "1"})
    # SIGTERM reaches process 1 alone, inside epoch 2: the job stops together after it.
    out["stopped"] = job("train", path, "--runs-dir", root / "stopped", "-q", "--processes",
                         "2", env={**env, FAULT_AT_BATCH_ENV: "1:7:SIGTERM",
                                   FAULT_PROCESS_ENV: "1"})
    out["tensorflow"] = job("train", path, "--runs-dir", root / "tensorflow", "-q",
                            "--set", "backend=tensorflow", "--set", "distribute=none")
    return out


def log(run) -> tuple[list[str], np.ndarray]:
    lines = (run / "log.csv").read_text().splitlines()
    return lines[0].split(","), np.array([[float(v) for v in line.split(",")]
                                          for line in lines[1:]])


def weights(run) -> list[np.ndarray]:
    import keras

    model = keras.saving.load_model(run / "model.keras", compile=False)
    return [np.asarray(w) for w in model.get_weights()]


def test_one_process_and_two_train_the_same_run(jobs):
    for name in ("one", "two"):
        assert jobs[name]["code"] == 0, jobs[name]["err"][-3000:]
    one, two = only_run(jobs["root"] / "one"), only_run(jobs["root"] / "two")
    (head_one, rows_one), (head_two, rows_two) = log(one), log(two)
    assert head_one == head_two and rows_one.shape == rows_two.shape == (4, len(head_one))
    # The same sums in another order (each process reduces its half first): float32's
    # last digit, no more.
    np.testing.assert_allclose(rows_two, rows_one, rtol=1e-6)
    for a, b in zip(weights(one), weights(two), strict=True):
        np.testing.assert_allclose(b, a, atol=1e-6)


def test_the_two_processes_end_with_identical_weights(jobs):
    assert jobs["two"]["code"] == 0, jobs["two"]["err"][-3000:]
    run = only_run(jobs["root"] / "two")
    said = json.loads((run / "processes.json").read_text())
    assert said["processes"] == 2
    first, second = said["weights_sha256"]
    assert first == second
    # The digest is of the weights model.keras holds (process 0's), not a label.
    digest = hashlib.sha256()
    for w in weights(run):
        digest.update(np.ascontiguousarray(w).tobytes())
    assert digest.hexdigest() == first


def test_only_process_0_writes_the_run(jobs):
    run = only_run(jobs["root"] / "two")
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed" and record["epochs_done"] == 4
    assert len(record["segments"]) == 1
    # Process 1's own run directory was a scratch folder, removed at its end.
    assert list(jobs["scratch"].glob("cbrun-*")) == []


def test_the_killed_job_resumed_with_two_processes_logs_byte_for_byte_like_the_whole(jobs):
    assert jobs["killed"]["code"] != 0, jobs["killed"]["err"][-3000:]
    assert jobs["resumed"]["code"] == 0, jobs["resumed"]["err"][-3000:]
    whole = only_run(jobs["root"] / "two")
    resumed = only_run(jobs["root"] / "killed")
    record = json.loads((resumed / "run.json").read_text())
    assert record["status"] == "completed"
    assert record["segments"][-1]["first_epoch"] == 3
    assert (resumed / "log.csv").read_bytes() == (whole / "log.csv").read_bytes()


def test_a_process_that_fails_ends_the_job_with_one_message(jobs):
    failed = jobs["failing"]
    assert failed["code"] == 1, failed["err"][-3000:]
    said = failed["err"].split("error: process 1 of 2 failed: ")
    assert len(said) == 2, failed
    assert "OSError: disk /data/shard1 is not mounted" in said[1]
    assert "Traceback" not in failed["err"]
    # Within seconds, not JAX's own timeouts (a heartbeat of 30 s, a shutdown barrier of 5
    # minutes): the others were ended as soon as process 1 said it left.
    assert failed["seconds"] < 150, failed["seconds"]
    run = only_run(jobs["root"] / "failing")
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "failed"
    assert "process 1 of 2 failed" in record["error"] and "shard1" in record["error"]


def test_a_process_killed_without_a_word_ends_the_job_naming_it(jobs):
    silent = jobs["silent"]
    assert silent["code"] == 1, silent["err"][-3000:]
    said = silent["err"].split("error: process 1 of 2 failed: ")
    assert len(said) == 2, silent
    assert said[1].startswith("it stopped answering"), said[1]
    assert "Traceback" not in silent["err"] and "Check failure" not in silent["err"]
    record = json.loads((only_run(jobs["root"] / "silent") / "run.json").read_text())
    assert record["status"] == "failed" and record["epochs_done"] == 2
    assert record["error"].startswith("process 1 of 2 failed: it stopped answering")


def test_a_signal_to_one_process_stops_every_process_at_the_same_epoch_end(jobs):
    stopped = jobs["stopped"]
    assert stopped["code"] == 75, stopped["err"][-3000:]
    run = only_run(jobs["root"] / "stopped")
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "interrupted" and record["epochs_done"] == 2, record
    whole = (only_run(jobs["root"] / "two") / "log.csv").read_text().splitlines()
    assert (run / "log.csv").read_text().splitlines() == whole[:3]


def test_the_same_config_trains_on_tensorflow(jobs):
    assert jobs["tensorflow"]["code"] == 0, jobs["tensorflow"]["err"][-3000:]
    record = json.loads((only_run(jobs["root"] / "tensorflow") / "run.json").read_text())
    assert record["status"] == "completed" and "backend" not in record["versions"]


def test_the_killed_job_ended_as_a_whole(jobs):
    err = jobs["killed"]["err"]
    assert jobs["killed"]["code"] == 128 + signal.SIGKILL, err[-3000:]


def data_parallel_config():
    from cbrun.config.root import RunConfig

    return RunConfig.model_validate(tiny_config(backend="jax", distribute="data_parallel"))


@pytest.mark.parametrize(("flags", "env", "expected"), [
    ({}, {}, None),  # one process
    ({"processes": 2}, {}, ("launch", 2)),
    ({"processes": 2, "coordinator": "node1:1234", "process_id": 1}, {},
     ("node1:1234", 2, 1, "the flags")),
    ({}, {"CBRUN_COORDINATOR": "node1:1234", "CBRUN_PROCESSES": "2", "CBRUN_PROCESS_ID": "0"},
     ("node1:1234", 2, 0, "the environment (CBRUN_*)")),
    ({}, {"SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "2"}, (None, None, None, "SLURM")),
    ({}, {"SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "1"}, None),  # srun of one task
    ({}, {"OMPI_COMM_WORLD_SIZE": "4"}, (None, None, None, "Open MPI")),
])
def test_a_process_learns_its_place_from_flags_environment_or_scheduler(flags, env, expected):
    from cbrun.run.processes import Launch, membership

    place = membership(data_parallel_config(), env=env, **flags)
    if expected is None:
        assert place is None
    elif expected[0] == "launch":
        assert place == Launch(expected[1])
    else:
        assert (place.coordinator, place.count, place.index, place.source) == expected


@pytest.mark.parametrize(("args", "says"), [
    (("--processes", "2", "--set", "distribute=none", "--set", "backend=tensorflow"),
     "needs backend: jax with distribute: data_parallel; this config has distribute: none"),
    (("--processes", "2", "--process-id", "1"),
     "--coordinator HOST:PORT is missing"),
    (("--processes", "2", "--process-id", "2", "--coordinator", "node1:1234"),
     "--process-id 2: the ids of a job of 2 processes are 0 to 1"),
    (("--processes", "2", "--process-id", "0", "--coordinator", "node1"),
     "--coordinator 'node1': write it HOST:PORT"),
    (("--process-id", "0", "--coordinator", "node1:1234"),
     "given without --processes N (CBRUN_PROCESSES)"),
    (("--processes", "2", "--fast-dev-run"), "--fast-dev-run runs in this one process"),
])
def test_a_wrong_job_flag_is_a_usage_error_before_anything_starts(tmp_path, capsys, args, says):
    path = write_config(tmp_path, tiny_config(backend="jax", distribute="data_parallel"))
    result = cli_output(capsys, "train", path, "--runs-dir", tmp_path / "runs", *args)
    assert result.code == 2, result
    assert says in result.err, result.err
    assert not (tmp_path / "runs").exists()
