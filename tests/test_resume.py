"""Exact resume: a run killed at an epoch boundary (or inside one, or inside the state
write) and resumed ends exactly where the uninterrupted run ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    HANG_S,
    HELPERS,
    cbrun_process,
    cli,
    only_run,
    read_log,
    tb_scalars,
    tiny_config,
    write_config,
)

EPOCHS = 16
CALLBACKS = [
    {"type": "EarlyStopping", "monitor": "val_loss", "patience": 2, "min_delta": 0.008,
     "restore_best_weights": True},
    {"type": "ReduceLROnPlateau", "monitor": "val_loss", "factor": 0.5, "patience": 0,
     "min_delta": 0.012},
    {"type": "ModelCheckpoint", "filepath": "checkpoints/best.keras", "monitor": "val_loss",
     "save_best_only": True},
    {"type": "CSVLogger", "filename": "log.csv"},
    {"type": "TensorBoard", "log_dir": "tensorboard"},
]


def rows_in(path: Path) -> int:
    try:
        return max(0, len(path.read_text().splitlines()) - 1)
    except FileNotFoundError:
        return 0


def interrupt_all(plans: dict) -> dict[str, tuple[int, str]]:
    """For each name -> (process, log, rows, signal): send the signal as soon as its log.csv
    has that many rows; the run is then somewhere in the next epoch (or its end), as a real
    Ctrl-C or kill would find it. `log` is a path or a function returning one (the run
    directory appears only once the run starts). All plans are watched at once."""
    deadline = time.monotonic() + HANG_S  # a safety net: runs start slowly on a loaded machine
    waiting = dict(plans)
    while waiting:
        for name, (proc, log, rows, sig) in list(waiting.items()):
            ended = proc.poll() is not None  # before reading the log: it may end meanwhile
            logged = rows_in(log() if callable(log) else log)
            if logged >= rows and not ended:
                proc.send_signal(sig)
                del waiting[name]
            elif ended or time.monotonic() > deadline:
                what = (f"exited ({proc.returncode})" if ended else "was still running at the "
                        "deadline")
                raise AssertionError(f"{name} {what} with {logged} epochs logged, to be "
                                     f"signalled at {rows}: {proc.communicate()}")
        time.sleep(0.002)
    results = {}
    for name, (proc, *_) in plans.items():
        out, err = proc.communicate(timeout=HANG_S)
        results[name] = (proc.returncode, out + err)
    return results


def log_of(runs: Path) -> Path:
    found = list(runs.glob("*/log.csv"))
    return found[0] if found else runs / "none" / "log.csv"


def differences(a: Path, b: Path) -> list[str]:
    """What a user would see differ between two run directories (empty when exact)."""
    import keras

    found = []
    rows_a, rows_b = read_log(a / "log.csv"), read_log(b / "log.csv")
    if rows_a != rows_b:
        first = next((i for i, (x, y) in enumerate(zip(rows_a, rows_b)) if x != y),
                     min(len(rows_a), len(rows_b)))
        found.append(f"log.csv differs from epoch {first + 1} ({len(rows_a)} vs {len(rows_b)} rows)")
    elif (a / "log.csv").read_bytes() != (b / "log.csv").read_bytes():
        found.append("log.csv has the same values but not the same bytes")
    if (a / "run.json").exists():
        ja, jb = (json.loads((p / "run.json").read_text()) for p in (a, b))
        if ja["stopped_early_at"] != jb["stopped_early_at"]:
            found.append(f"early stop {ja['stopped_early_at']} vs {jb['stopped_early_at']}")
    for name in ("model.keras", "checkpoints/best.keras"):
        if (a / name).exists() or (b / name).exists():
            wa = keras.saving.load_model(a / name).get_weights()
            wb = keras.saving.load_model(b / name).get_weights()
            if not all(np.array_equal(x, y) for x, y in zip(wa, wb, strict=True)):
                found.append(f"{name} weights differ")
    if (a / "tensorboard").exists():
        sa, sb = tb_scalars(a / "tensorboard"), tb_scalars(b / "tensorboard")
        for key, points in sb.items():
            steps = [s for s, _ in points]
            if len(steps) != len(set(steps)) or steps != sorted(steps):
                found.append(f"tensorboard {key} has duplicate or backward steps: {steps}")
        summaries = list((b / "tensorboard").rglob("events.out.tfevents.*"))
        if _tags_written(summaries).count("keras") > 1:
            found.append("tensorboard holds the model summary twice")
        epoch_a = {k: v for k, v in sa.items() if k[1].startswith("epoch_")}
        epoch_b = {k: sorted(v) for k, v in sb.items() if k[1].startswith("epoch_")}
        if {k: sorted(v) for k, v in epoch_a.items()} != epoch_b:
            found.append("tensorboard epoch scalars differ")
    return found


def _tags_written(paths: list[Path]) -> list[str]:
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    return [v.tag for p in paths for e in EventFileLoader(str(p)).Load() for v in e.summary.value]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One uninterrupted run and four interrupted-then-resumed ones: a SIGKILL, a Ctrl-C and
    a SIGTERM each after a different epoch, and a kill inside the state write. What is
    interrupted runs in processes of its own, started together; the uninterrupted run and
    the resumes run in this process once the signals are sent (cbrun starts each run from
    a clean Keras session; a process start and a TensorFlow import saved for each)."""
    root = tmp_path_factory.mktemp("resume")
    config = write_config(root, tiny_config(name="exact", fit={"epochs": EPOCHS},
                                            callbacks=CALLBACKS))
    plans = {"kill-after-6": (6, signal.SIGKILL, {}), "ctrl-c-after-4": (4, signal.SIGINT, {}),
             "sigterm-after-2": (2, signal.SIGTERM, {})}
    procs = {"kill-in-state-write": cbrun_process(
        "train", config, "--runs-dir", root / "kill-in-state-write", "-q",
        env={"CBRUN_FAULT_KILL_IN_STATE_WRITE": "5"})}
    for name in plans:
        procs[name] = cbrun_process("train", config, "--runs-dir", root / name, "-q")

    codes, outputs = {}, {}
    interrupted = interrupt_all({name: (procs[name], lambda n=name: log_of(root / n), rows, sig)
                                 for name, (rows, sig, _) in plans.items()})
    for name, (code, output) in interrupted.items():
        codes[name], outputs[f"interrupted {name}"] = code, output
    codes["baseline"] = cli("train", config, "--runs-dir", root / "baseline", "-q")
    outputs["kill-in-state-write"] = procs["kill-in-state-write"].communicate(timeout=HANG_S)
    codes["kill-in-state-write"] = procs["kill-in-state-write"].returncode
    before = {name: json.loads((only_run(root / name) / "run.json").read_text())
              for name in [*procs, "baseline"]}
    states = {name: sorted(p.name for p in (only_run(root / name) / "state").iterdir())
              for name in [*procs, "baseline"]}
    for name in procs:
        codes[f"resume {name}"] = cli("resume", only_run(root / name))
    return {"root": root, "codes": codes, "before": before, "states": states,
            "outputs": outputs, "config": config}


def test_the_baseline_stops_early_after_the_interruptions(runs):
    record = json.loads((only_run(runs["root"] / "baseline") / "run.json").read_text())
    assert runs["codes"]["baseline"] == 0
    assert record["status"] == "stopped_early"
    # Every interruption falls before the early stop, so resume must reproduce it.
    assert record["stopped_early_at"] > 7


@pytest.mark.parametrize("name", ["kill-after-6", "ctrl-c-after-4", "sigterm-after-2",
                                  "kill-in-state-write"])
def test_resumed_run_ends_exactly_like_the_uninterrupted_one(runs, name):
    assert runs["codes"][f"resume {name}"] == 0
    baseline = only_run(runs["root"] / "baseline")
    resumed = only_run(runs["root"] / name)
    assert differences(baseline, resumed) == []
    record = json.loads((resumed / "run.json").read_text())
    assert [s["kind"] for s in record["segments"]] == ["train", "resume"]
    assert record["status"] == "stopped_early"


def test_sigkill_leaves_status_running_and_resume_sees_the_process_is_gone(runs):
    assert runs["codes"]["kill-after-6"] == -signal.SIGKILL
    assert runs["before"]["kill-after-6"]["status"] == "running"
    assert runs["codes"]["resume kill-after-6"] == 0
    record = json.loads((only_run(runs["root"] / "kill-after-6") / "run.json").read_text())
    assert [s["status"] for s in record["segments"]] == ["killed", "stopped_early"]


def test_sigterm_marks_the_run_interrupted_and_exits_75(runs):
    assert runs["codes"]["sigterm-after-2"] == 75  # EX_TEMPFAIL: a scheduler requeues it
    assert runs["before"]["sigterm-after-2"]["status"] == "interrupted"
    run = only_run(runs["root"] / "sigterm-after-2")
    assert f"cbrun resume {run}" in runs["outputs"]["interrupted sigterm-after-2"]


def test_ctrl_c_marks_the_run_interrupted_and_prints_the_resume_command(runs):
    assert runs["codes"]["ctrl-c-after-4"] == 130
    assert runs["before"]["ctrl-c-after-4"]["status"] == "interrupted"
    run = only_run(runs["root"] / "ctrl-c-after-4")
    # Even with -q, the way back is printed: the exact command to continue.
    assert f"cbrun resume {run}" in runs["outputs"]["interrupted ctrl-c-after-4"]
    assert "Traceback" not in runs["outputs"]["interrupted ctrl-c-after-4"]


def test_a_kill_inside_the_state_write_leaves_the_previous_state_whole(runs):
    assert runs["codes"]["kill-in-state-write"] == -signal.SIGKILL
    states = runs["states"]["kill-in-state-write"]
    # Epoch 5's state was half written under a temporary name; epoch 4's is whole.
    assert "epoch-00004" in states and "epoch-00005" not in states
    assert any(s.startswith(".tmp-epoch-00005") for s in states)
    # run.json is written after the state: it never claims the epoch that was lost.
    assert runs["before"]["kill-in-state-write"]["epochs_done"] == 4


def test_keras_backup_and_restore_fails_the_same_comparison(tmp_path):
    script = str(HELPERS / "keras_backup_and_restore.py")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}

    def start(out: Path, *kill_after: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, script, str(out), str(EPOCHS), *kill_after],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)

    plain, killed = tmp_path / "plain", tmp_path / "killed"
    first, second = start(plain), start(killed, "4")
    second.communicate(timeout=HANG_S)
    assert second.returncode == -signal.SIGKILL and len(read_log(killed / "log.csv")) == 4
    again = start(killed)
    for proc in (first, again):
        _out, err = proc.communicate(timeout=HANG_S)
        assert proc.returncode == 0, err[-2000:]
    # Keras's resume restores weights, optimizer and epoch only: the shuffling, Dropout's
    # random state and the callbacks' counters start over, and the curves part ways.
    found = differences(plain, killed)
    assert any(d.startswith("log.csv differs from epoch 5 ") for d in found), found


def test_resuming_an_early_stopped_run_is_refused_without_the_flag(runs, capsys):
    baseline = only_run(runs["root"] / "baseline")
    assert cli("resume", baseline) == 2
    err = capsys.readouterr().err
    assert "EarlyStopping" in err and "--continue-after-early-stop" in err

