"""SIGTERM at any instant ends a training process with 143 and an `interrupted` run, never a
crash: during the TensorFlow import (an interrupted import leaves TensorFlow's native
threads running; the interpreter must not be torn down around them) and during training.
A loop of such kills at random instants is reported in the issue-10 notes; a few stay here."""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path

from conftest import cbrun_process, tiny_config, write_config


def _wait_for(pattern: str, root: Path, proc, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not list(root.glob(pattern)):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"no {pattern} under {root}"
        time.sleep(0.01)


def test_sigterm_during_the_import_or_training_exits_143_not_a_crash(tmp_path):
    path = write_config(tmp_path, tiny_config(fit={"epochs": 200}))
    rng = random.Random(10)
    # (what to wait for, extra delay): run.json appears just before TensorFlow is imported.
    plans = [("*/run.json", 0.0), ("*/run.json", rng.uniform(0.2, 1.5)),
             ("*/state/epoch-*", 0.0), ("*/state/epoch-*", rng.uniform(0, 1.0))]
    procs = [cbrun_process("train", path, "--runs-dir", tmp_path / f"r{i}", "-q",
                           env={"PYTHONFAULTHANDLER": "1"}) for i in range(len(plans))]
    for i, ((pattern, delay), proc) in enumerate(zip(plans, procs, strict=True)):
        _wait_for(pattern, tmp_path / f"r{i}", proc)
        time.sleep(delay)
        proc.send_signal(signal.SIGTERM)
    for i, proc in enumerate(procs):
        _out, err = proc.communicate(timeout=240)
        assert proc.returncode == 143, (i, proc.returncode, err[-3000:])
        assert "Fatal Python error" not in err and "Traceback" not in err
        assert "interrupted by SIGTERM" in err
        (run_json,) = (tmp_path / f"r{i}").glob("*/run.json")
        assert json.loads(run_json.read_text())["status"] == "interrupted"
