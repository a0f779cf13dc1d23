"""Runs that go wrong mid-way: a loss that becomes NaN with no callback watching it, a disk
that fills up. Each ends with one clear message and a run.json that says why."""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import numpy as np
import pytest
from conftest import cli_output, only_run, read_log, tiny_config, write_config


def test_a_loss_that_becomes_nan_fails_the_run_without_terminate_on_nan(tmp_path, capsys):
    # A learning rate far too large: the weights grow each step until the loss overflows.
    rng = np.random.default_rng(3)
    x = rng.normal(size=(64, 4)).astype("float32")
    np.savez(tmp_path / "lin.npz", x=x, y=x.sum(axis=1))
    config = tiny_config(
        data={"source": "npz", "path": "lin.npz", "batch_size": 8, "validation_split": 0.25},
        model={"input_shape": [4], "layers": [{"type": "Dense", "units": 1}]},
        compile={"optimizer": {"type": "SGD", "learning_rate": 6.0}, "loss": "mse"},
        fit={"epochs": 30}, callbacks=[{"type": "CSVLogger", "filename": "log.csv"}])
    result = cli_output(capsys, "train", write_config(tmp_path, config), "--runs-dir",
                        tmp_path / "r")
    assert result.code == 1
    run = only_run(tmp_path / "r")
    record = json.loads((run / "run.json").read_text())
    rows = read_log(run / "log.csv")
    losses = [float(r["loss"]) for r in rows]
    assert record["status"] == "failed" and record["stop_reason"] == "nan_loss"
    # It trained finite epochs first, stopped at the first one that was not, no later.
    assert len(rows) > 1 and all(np.isfinite(losses[:-1])) and not np.isfinite(losses[-1])
    assert record["epochs_done"] == len(rows) < 30
    assert f"NaN or inf in epoch {len(rows)}" in record["error"]
    assert "the loss became NaN or inf" in result.out + result.err

    refused = cli_output(capsys, "resume", run)
    assert refused.code == 2
    assert refused.err.count("\n") == 1 and "NaN" in refused.err


@pytest.fixture
def small_disk(tmp_path):
    """A 600 KiB tmpfs: room for two saved states of the model below, not three."""
    mount = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mount)],
                          capture_output=True, check=False)
    if done.returncode != 0 or not os.path.ismount(mount):
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_fails_the_run_in_one_line_and_leaves_nothing_stale(tmp_path, small_disk,
                                                                        capsys):
    config = tiny_config(model={"input_shape": [64], "layers": [
        {"type": "Dense", "units": 256, "activation": "relu"},
        {"type": "Dense", "units": 10, "activation": "softmax"}]}, fit={"epochs": 5})
    path = write_config(tmp_path, config)
    result = cli_output(capsys, "train", path, "--runs-dir", small_disk, "-q")
    assert result.code == 1
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1 and "No space left on device" in lines[0], result.err
    run = only_run(small_disk)
    assert f"cbrun resume {run}" in lines[0]
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "failed" and record["stop_reason"] == "no_space"
    states = sorted(p.name for p in (run / "state").iterdir())
    assert record["epochs_done"] == int(states[-1][-5:]) >= 1
    assert not [p for p in run.rglob("*") if ".tmp" in p.name]

    subprocess.run(["mount", "-o", "remount,size=16m", str(small_disk)], check=True)
    resumed = cli_output(capsys, "resume", run, "-q")
    assert resumed.code == 0, resumed.err
    assert [int(r["epoch"]) for r in read_log(run / "log.csv")] == [0, 1, 2, 3, 4]
