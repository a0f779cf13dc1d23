"""`distribute:`: MirroredStrategy on two logical CPUs trains and resumes exactly, the keys
are checked before TensorFlow, and the multi-worker refusal stays true to Keras."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys

import pytest
from conftest import (
    HANG_S,
    HELPERS,
    cbrun_process,
    cli_output,
    only_run,
    tiny_config,
    write_config,
)

from cbrun.state.files import FAULT_ENV

MIRRORED = {"type": "mirrored", "devices": ["/cpu:0", "/cpu:1"]}


def run(*args, env=None) -> subprocess.CompletedProcess:
    # Logical CPUs can only be made before TensorFlow sets up its devices: a fresh process.
    proc = cbrun_process(*args, env=env)
    out, err = proc.communicate(timeout=HANG_S)
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory):
    root = tmp_path_factory.mktemp("mirrored")
    # TensorBoard: the resume rewinds its event files, touching TensorFlow's devices before
    # the session splits the CPU (it once failed there).
    path = write_config(root, tiny_config(name="mirrored", fit={"epochs": 3},
                                          distribute=MIRRORED, callbacks=[
                                              {"type": "TensorBoard", "histogram_freq": 1}]))
    whole = run("train", path, "--runs-dir", root / "whole", "-q")
    killed = run("train", path, "--runs-dir", root / "killed", "-q", env={FAULT_ENV: "2"})
    resumed = None
    if killed.returncode == -signal.SIGKILL:
        resumed = run("resume", only_run(root / "killed"), "-q")
    return {"root": root, "whole": whole, "killed": killed, "resumed": resumed}


def test_mirrored_on_two_logical_cpus_trains(mirrored):
    whole = mirrored["whole"]
    assert whole.returncode == 0, whole.stderr[-3000:]
    assert "mirrored on /cpu:0, /cpu:1 (2 replicas" in whole.stderr
    record = json.loads((only_run(mirrored["root"] / "whole") / "run.json").read_text())
    assert record["status"] == "completed" and record["epochs_done"] == 3


def test_mirrored_killed_and_resumed_logs_byte_for_byte_like_the_whole_run(mirrored):
    assert mirrored["killed"].returncode == -signal.SIGKILL, mirrored["killed"].stderr[-3000:]
    assert mirrored["resumed"].returncode == 0, mirrored["resumed"].stderr[-3000:]
    whole = only_run(mirrored["root"] / "whole") / "log.csv"
    resumed = only_run(mirrored["root"] / "killed")
    assert json.loads((resumed / "run.json").read_text())["segments"][-1]["first_epoch"] == 2
    assert (resumed / "log.csv").read_bytes() == whole.read_bytes()


@pytest.mark.parametrize(("distribute", "where", "says"), [
    ("multi_worker", "distribute.type", "keras-team/keras#20585"),
    ({"type": "mirrored", "devices": ["/cpu:0", "/CPU:0"]}, "distribute.devices",
     "/cpu:0 is listed twice"),
    ({"type": "mirrored", "devices": ["gpu1"]}, "distribute.devices[0]", "/cpu:N or /gpu:N"),
    ({"type": "one_device", "devices": ["/cpu:0"]}, "distribute.devices",
     "one_device takes: device"),
    ("mirorred", "distribute.type", "did you mean 'mirrored'"),
])
def test_distribute_mistakes_are_found_before_tensorflow(tmp_path, capsys, distribute, where,
                                                         says):
    path = write_config(tmp_path, tiny_config(distribute=distribute))
    result = cli_output(capsys, "validate", path)
    assert result.code == 2
    assert f"{path}:" in result.out + result.err
    assert f"{where}: " in result.out + result.err and says in result.out + result.err


@pytest.mark.parametrize(("changes", "where", "says"), [
    ({"distribute": MIRRORED, "data": {"source": "digits", "batch_size": 33}},
     "data.batch_size", "split evenly between the 2 replicas; use a multiple of 2 (e.g. 32)"),
    ({"distribute": MIRRORED, "compile": {"optimizer": "adam", "loss": "mse",
                                          "steps_per_execution": 5}},
     "compile.steps_per_execution", "fails under a strategy with 2 replicas"),
    ({"distribute": {"type": "one_device", "device": "/cpu:100"}}, "distribute.device",
     "CPUs past /cpu:0 are made by splitting the CPU"),
    ({"compile": {"optimizer": "adam", "loss": "mse", "steps_per_execution": 5},
      "callbacks": [{"type": "TensorBoard", "update_freq": "batch"}]},
     "compile.steps_per_execution", "TensorBoard needs every batch"),
])
def test_what_would_fail_mid_epoch_is_found_by_validate(tmp_path, capsys, changes, where,
                                                         says):
    """Judged from the config alone: `cbrun validate` says it, before TensorFlow."""
    result = cli_output(capsys, "validate", write_config(tmp_path, tiny_config(**changes)))
    assert result.code == 2
    assert f"{where}: " in result.out and says in result.out, result.out


def test_a_gpu_the_machine_lacks_is_a_config_error_and_leaves_no_run(tmp_path):
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    path = write_config(tmp_path, tiny_config(distribute={"type": "one_device",
                                                          "device": "/gpu:0"}))
    result = run("train", path, "--runs-dir", tmp_path / "runs")
    assert result.returncode == 2, result.stderr[-3000:]
    assert "distribute.device: this machine has 0 GPU(s) (none)" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list((tmp_path / "runs").glob("*"))


def test_what_keras_fails_on_under_two_replicas_is_refused_before_the_first_batch(tmp_path):
    """A global batch the replicas cannot share, several batches per call, XLA across split
    CPUs: each a traceback in epoch 1 otherwise. All three at once, each at its key."""
    path = write_config(tmp_path, tiny_config(distribute=MIRRORED))
    result = run("train", path, "--runs-dir", tmp_path / "runs", "--set",
                 "data.batch_size=33", "--set", "compile.steps_per_execution=5", "--set",
                 "compile.jit_compile=true")
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    for says in (("data.batch_size: under distribute: mirrored, batch_size is the global "
                 "batch, split evenly between the 2 replicas; use a multiple of 2 (e.g. 32)"),
                 "compile.steps_per_execution: Keras's multi-batch loop fails",
                 "compile.jit_compile: XLA cannot run replicas on split CPUs"):
        assert says in result.stderr, result.stderr[-3000:]
    assert not list((tmp_path / "runs").glob("*"))


def test_a_logical_cpu_far_past_the_machine_is_refused(tmp_path):
    path = write_config(tmp_path, tiny_config(distribute={"type": "one_device",
                                                          "device": "/cpu:100000"}))
    result = run("train", path, "--runs-dir", tmp_path / "runs")
    assert result.returncode == 2, result.stderr[-3000:]
    assert "distribute.device: CPUs past /cpu:0 are made by splitting the CPU" in result.stderr
    assert not list((tmp_path / "runs").glob("*"))


def _free_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    for sock in socks:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in socks]
    for sock in socks:
        sock.close()
    return ports


def test_multi_worker_still_fails_in_keras_so_cbrun_still_refuses_it():
    """Two workers of MultiWorkerMirroredStrategy on loopback, a tiny model.fit each."""
    ports = [str(p) for p in _free_ports(2)]
    workers = [subprocess.Popen([sys.executable, str(HELPERS / "multi_worker_probe.py"),
                                 str(i), *ports], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True) for i in range(2)]
    outputs = []
    try:
        for worker in workers:
            outputs.append(worker.communicate(timeout=HANG_S)[0])
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    if any("PROBE-OK" in out for out in outputs):
        pytest.fail("multi_worker works now: lift cbrun's refusal "
                    "(cbrun/config/distribute.py, MultiWorker) and test it like mirrored")
    assert all("Attempt to convert a value (PerReplica" in out for out in outputs), outputs


def test_one_device_runs_several_batches_per_call_and_trains_like_no_strategy(tmp_path):
    """One replica: Keras's multi-batch loop works, so cbrun allows it (5 batches a call,
    given: what `auto` would pick depends on the machine's speed), and the curves are those
    of the same run without a strategy."""
    from conftest import cli

    logs = {}
    for kind in ("none", "one_device"):
        # 1,437 samples in batches of 32: 45 batches an epoch, 9 calls of 5.
        config = tiny_config(fit={"epochs": 2}, distribute=kind)
        config["data"]["batch_size"] = 32
        config["compile"]["steps_per_execution"] = 5
        path = write_config(tmp_path / kind, config)
        assert cli("train", path, "--runs-dir", tmp_path / kind / "runs", "-q") == 0
        run = only_run(tmp_path / kind / "runs")
        logs[kind] = (run / "log.csv").read_bytes()
        assert json.loads((run / "run.json").read_text())["steps_per_execution"] == 5
    assert logs["none"] == logs["one_device"]
