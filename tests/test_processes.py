"""One run in two processes (`distribute: data_parallel`, backend: jax, CPU collectives over
gloo) started by the local launcher (`--processes 2`): the same run as one process trains,
the same weights in both processes, exact resume after the whole job is killed, and a
process that fails ends the job with one message naming it.

All the jobs share one small model (the digits MLP of conftest) and start in one fixture."""

from __future__ import annotations

import hashlib
import io
import json
import os
import resource
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable

import h5py
import numpy as np
import pytest
from conftest import (
    HANG_S,
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


class Jobs:
    """`cbrun ARGS` jobs started as soon as what they need has ended, PARALLEL at a time:
    most of a job's time is its processes' start (each imports TensorFlow and JAX) and
    their waits for one another, which overlap with another job's work."""

    PARALLEL = 3

    def __init__(self, root, env):
        self.root, self.env = root, env
        self.waiting: list[tuple[str, Callable[[dict], list | None] | list, dict, tuple,
                                 Callable[[], None] | None]] = []
        self.running: dict[str, tuple[subprocess.Popen, float]] = {}
        self.done: dict[str, dict] = {}
        self.then: dict[str, Callable[[], None] | None] = {}

    def add(self, name, args, env=None, after=(), then=None):
        """args: the command line, or a function of the jobs done that makes it (None:
        not run); then: called when the job has ended, before any job after it starts."""
        self.waiting.append((name, args, env or {}, after, then))

    def run(self) -> dict:
        deadline = time.monotonic() + HANG_S
        while self.waiting or self.running:
            for name, (proc, started) in list(self.running.items()):
                if proc.poll() is not None:
                    self.done[name] = {
                        "code": proc.returncode, "seconds": time.monotonic() - started,
                        **{k: (self.root / f"{name}.{k}").read_text() for k in ("out", "err")}}
                    del self.running[name]
                    if self.then.get(name):
                        self.then[name]()
            for entry in list(self.waiting):
                name, args, env, after, then = entry
                if len(self.running) >= self.PARALLEL:
                    break
                if all(a in self.done for a in after):
                    self.waiting.remove(entry)
                    self.then[name] = then
                    args = args(self.done) if callable(args) else args
                    if args is None:
                        self.done[name] = None
                        continue
                    self.running[name] = (subprocess.Popen(
                        [sys.executable, "-m", "cbrun", *map(str, args)],
                        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **self.env, **env},
                        stdout=(self.root / f"{name}.out").open("w"),
                        stderr=(self.root / f"{name}.err").open("w")), time.monotonic())
            assert time.monotonic() < deadline, f"jobs still running: {list(self.running)}"
            time.sleep(0.2)
        return self.done


@pytest.fixture(scope="module")
def jobs(tmp_path_factory):
    root = tmp_path_factory.mktemp("processes")
    scratch = root / "tmp"  # where process 1 of the uninterrupted job writes
    scratch.mkdir()
    path = write_config(root, tiny_config(name="dp", backend="jax",
                                          distribute="data_parallel", fit={"epochs": 4}))
    failing = write_config(root, tiny_config(
        name="failing", backend="jax", distribute="data_parallel",
        data={"source": "python", "function": "failing_data:load", "batch_size": 64},
        model={"input_shape": [8], "layers": [{"type": "Dense", "units": 2,
                                               "activation": "softmax"}]}), "failing.yaml")
    (root / "failing_data.py").write_text(FAILING_LOADER)
    # In the order they start, PARALLEL at a time: the three jobs of one run first, which
    # follow one another.
    runs = Jobs(root, jax_cache(root))

    def resume(name, after, env=None):
        """`cbrun resume` of the run under root/stopped, once `after` has ended."""
        runs.add(name, lambda done: (
            ["resume", only_run(root / "stopped"), "-q", "--processes", "2"]
            if (root / "stopped").is_dir() else None), env, after=(after,))

    # SIGTERM reaches process 1 alone after batch 2 of epoch 2 (steps_per_execution auto:
    # 2): the processes agree to stop together before batch 3, its state saved there.
    def first_segment():  # as the stopped job left it, before it is resumed
        run = only_run(root / "stopped")
        (root / "stopped.record").write_text(json.dumps({
            **json.loads((run / "run.json").read_text()),
            "states": sorted(p.name for p in (run / "state").iterdir())}))

    runs.add("stopped", ["train", path, "--runs-dir", root / "stopped", "-q", "--processes",
                         "2"], {FAULT_AT_BATCH_ENV: "1:1:SIGTERM", FAULT_PROCESS_ENV: "1"},
             then=first_segment)
    # Resumed there by two processes, and every process SIGKILLed while it writes epoch 3's
    # state: the newest whole state is epoch 2's; resumed again, to the end.
    resume("killed", "stopped", {FAULT_ENV: "3"})
    resume("resumed", "killed")
    runs.add("two", ["train", path, "--runs-dir", root / "two", "-q", "--processes", "2"],
             {"TMPDIR": str(scratch)})
    runs.add("one", ["train", path, "--runs-dir", root / "one", "-q"])
    runs.add("failing", ["train", failing, "--runs-dir", root / "failing", "--processes",
                         "2"])
    # Process 1 alone SIGKILLed after batch 8 of epoch 3: no word from it.
    runs.add("silent", ["train", path, "--runs-dir", root / "silent", "--processes", "2"],
             {FAULT_AT_BATCH_ENV: "2:7", FAULT_PROCESS_ENV: "1"})
    runs.add("tensorflow", ["train", path, "--runs-dir", root / "tensorflow", "-q", "--set",
                            "backend=tensorflow", "--set", "distribute=none"])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = runs.run()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # Where the module's time goes (pytest -s shows it): each job's wall time, and the
    # processor time of them all (on 2 free cores, half of it is the least they can take).
    print("\n" + ", ".join(f"{name} {job['seconds']:.0f} s" for name, job in done.items()
                           if job is not None)
          + "; processor time of all jobs: "
            f"{after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime:.0f} s")
    return {"root": root, "scratch": scratch, **done}


def log(run) -> tuple[list[str], np.ndarray]:
    lines = (run / "log.csv").read_text().splitlines()
    return lines[0].split(","), np.array([[float(v) for v in line.split(",")]
                                          for line in lines[1:]])


def weights(run) -> list[np.ndarray]:
    """The model's weights in model.keras, in the model's order, read from the file itself:
    this process need not import Keras and TensorFlow (seconds, on 2 busy cores)."""
    with zipfile.ZipFile(run / "model.keras") as archive:
        layers = json.loads(archive.read("config.json"))["config"]["layers"]
        with h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as h5:
            found = [h5[f"layers/{layer['config']['name']}/vars"] for layer in layers
                     if f"layers/{layer['config']['name']}/vars" in h5]
            return [np.asarray(group[str(i)]) for group in found for i in range(len(group))]


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
    # The command as it was typed, --processes included (its processes run it without).
    assert record["command"][-2:] == record["segments"][0]["command"][-2:] == [
        "--processes", "2"], record["command"]
    # Process 1's own run directory was a scratch folder, removed at its end.
    assert list(jobs["scratch"].glob("cbrun-*")) == []


def test_a_process_that_fails_ends_the_job_with_one_message(jobs):
    failed = jobs["failing"]
    assert failed["code"] == 1, failed["err"][-3000:]
    said = failed["err"].split("error: process 1 of 2 failed: ")
    assert len(said) == 2, failed
    assert "OSError: disk /data/shard1 is not mounted" in said[1]
    # At the config's file and line, as process 0 names its own config errors.
    assert f"\n{jobs['root'] / 'failing.yaml'}:5:13: data.function: " in said[1], said[1]
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


def test_a_signal_to_one_process_stops_every_process_at_the_same_batch(jobs):
    stopped = jobs["stopped"]
    assert stopped["code"] == 75, stopped["err"][-3000:]
    assert "interrupted by SIGTERM after 1 complete epoch and 2 batches of epoch 2" \
        in stopped["err"], stopped["err"][-3000:]
    # The record of that first segment (the later ones resumed the same run).
    first = json.loads((jobs["root"] / "stopped.record").read_text())
    assert first["status"] == "interrupted" and first["epochs_done"] == 1, first
    assert first["states"] == ["epoch-00001", "epoch-00001-0000002"], first


def test_a_job_stopped_inside_an_epoch_then_killed_resumes_to_the_uninterrupted_job(jobs):
    """Stopped at batch 2 of epoch 2 and resumed by two processes there; that job SIGKILLed
    as a whole inside epoch 3's state write and resumed from epoch 2's end: log.csv byte
    for byte and the weights equal to the uninterrupted two-process job's."""
    assert jobs["killed"]["code"] == 128 + signal.SIGKILL, jobs["killed"]["err"][-3000:]
    assert jobs["resumed"]["code"] == 0, jobs["resumed"]["err"][-3000:]
    whole, resumed = only_run(jobs["root"] / "two"), only_run(jobs["root"] / "stopped")
    record = json.loads((resumed / "run.json").read_text())
    assert record["status"] == "completed"
    assert [s["first_epoch"] for s in record["segments"]] == [1, 2, 3]
    assert (resumed / "log.csv").read_bytes() == (whole / "log.csv").read_bytes()
    for a, b in zip(weights(whole), weights(resumed), strict=True):
        assert np.array_equal(a, b)


def test_the_same_config_trains_on_tensorflow(jobs):
    assert jobs["tensorflow"]["code"] == 0, jobs["tensorflow"]["err"][-3000:]
    record = json.loads((only_run(jobs["root"] / "tensorflow") / "run.json").read_text())
    assert record["status"] == "completed" and "backend" not in record["versions"]


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
