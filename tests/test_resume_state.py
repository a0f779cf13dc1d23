"""Resume where it is hard: interruptions where the callbacks hold real state (chosen from the
uninterrupted run's own log.csv), damaged states (the spare, a full restart, pruning), and
random bytes flipped in random state files."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
from conftest import HELPERS, cli, cli_output, only_run, read_log, tiny_config, write_config

EPOCHS = 24
ES = {"type": "EarlyStopping", "monitor": "val_loss", "patience": 3, "min_delta": 0.004,
      "restore_best_weights": True}
RLROP = {"type": "ReduceLROnPlateau", "monitor": "val_loss", "factor": 0.5, "patience": 1,
         "cooldown": 3, "min_delta": 0.004}
# Crash(e) raises at the end of 0-based epoch e, before its state is saved: the segment ends
# with e epochs saved. An interruption at an exact epoch, with no race; it holds no state, so
# it changes nothing else.
NEVER = 999
STATE_FILES = ["variables.npz", "arrays.npz", "state.json", "checksums.json"]


def config(crash_at: int) -> dict:
    crash = {"type": "Custom", "class": "probe_callbacks:Crash", "params": {"epoch": crash_at}}
    return tiny_config(name="state", fit={"epochs": EPOCHS},
                       callbacks=[crash, ES, RLROP, {"type": "CSVLogger", "filename": "log.csv"}])


def es_waits(val: list[float]) -> list[int]:
    """EarlyStopping's `wait` after each epoch (Keras's rule, min mode)."""
    best, wait, out = float("inf"), 0, []
    for value in val:
        wait += 1
        if value < best - ES["min_delta"]:
            best, wait = value, 0
        out.append(wait)
    return out


def rlrop_cooldowns(val: list[float]) -> list[int]:
    """ReduceLROnPlateau's cooldown counter after each epoch (Keras's rule, min mode)."""
    best, wait, cooldown, out = float("inf"), 0, 0, []
    for value in val:
        if cooldown > 0:
            cooldown, wait = cooldown - 1, 0
        if value < best - RLROP["min_delta"]:
            best, wait = value, 0
        elif cooldown == 0:
            wait += 1
            if wait >= RLROP["patience"]:
                cooldown, wait = RLROP["cooldown"], 0
        out.append(cooldown)
    return out


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """One uninterrupted run, the interruption points its log gives, and one run interrupted
    at each point (kept aside, copied by each test that resumes it)."""
    root = tmp_path_factory.mktemp("state")
    shutil.copy(HELPERS / "probe_callbacks.py", root)
    assert cli("train", write_config(root, config(NEVER), "base.yaml"),
               "--runs-dir", root / "base", "-q") == 0
    run = only_run(root / "base")
    rows = read_log(run / "log.csv")
    record = json.loads((run / "run.json").read_text())
    stopped = record["stopped_early_at"]
    assert record["status"] == "stopped_early" and stopped < EPOCHS
    val = [float(r["val_loss"]) for r in rows]
    rates = [float(r["learning_rate"]) for r in rows]
    waits, cooldowns = es_waits(val), rlrop_cooldowns(val)
    # After epoch k: EarlyStopping waits the longest, and epoch k + 1 fails to beat its best
    # too (where it improves, Keras resets wait and best anyway, and a resume that lost them
    # would still end alike); and the rate was already cut while a cooldown runs into an
    # epoch that does not improve (so a lost counter would cut again).
    deep_wait = max((k for k in range(1, stopped) if waits[k - 1] and waits[k]),
                    key=lambda k: (waits[k - 1], k), default=0)
    cooling = [k for k in range(1, stopped - 1)
               if cooldowns[k - 1] > 0 and rates[k] < rates[0]
               and val[k] >= min(val[:k]) - RLROP["min_delta"]]
    if not deep_wait or not cooling:
        pytest.fail(f"the baseline has no point where the callbacks hold state: {rows}")
    points = {"deep-wait": deep_wait, "cooldown": cooling[0]}
    interrupted = {}
    for name, k in points.items():
        path = write_config(root, config(k), f"{name}.yaml")
        assert cli("train", path, "--runs-dir", root / name, "-q") == 1
        interrupted[name] = only_run(root / name)
    return {"root": root, "run": run, "rows": rows, "stopped": stopped, "points": points,
            "waits": waits, "interrupted": interrupted}


def resume_copy(base, name: str, dest: Path) -> Path:
    shutil.copytree(base["interrupted"][name], dest, symlinks=True)
    return dest


def resume(capsys, run: Path):
    return cli_output(capsys, "resume", run, "--set", f"callbacks[0].params.epoch={NEVER}")


def first_resumed_epoch(run: Path) -> int:
    return json.loads((run / "run.json").read_text())["segments"][-1]["first_epoch"]


@pytest.mark.parametrize("name", ["deep-wait", "cooldown"])
def test_resume_where_callbacks_hold_state_ends_like_the_uninterrupted_run(base, name,
                                                                          tmp_path, capsys):
    k = base["points"][name]
    run = resume_copy(base, name, tmp_path / "run")
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "failed" and record["epochs_done"] == k
    result = resume(capsys, run)
    assert result.code == 0, result.err
    assert first_resumed_epoch(run) == k + 1
    assert read_log(run / "log.csv") == base["rows"]
    assert json.loads((run / "run.json").read_text())["stopped_early_at"] == base["stopped"]


def test_a_spare_state_is_kept_and_used_when_the_newest_is_damaged_inside(base, tmp_path,
                                                                           capsys):
    k = base["points"]["deep-wait"]
    run = resume_copy(base, "deep-wait", tmp_path / "run")
    assert sorted(p.name for p in (run / "state").iterdir()) == [
        f"epoch-{k - 1:05d}", f"epoch-{k:05d}"]
    # One byte inside the stored array data: the zip archive stays intact and readable.
    damaged = run / "state" / f"epoch-{k:05d}" / "variables.npz"
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0x10
    damaged.write_bytes(bytes(data))
    result = resume(capsys, run)
    assert result.code == 0, result.err
    assert f"epoch-{k:05d} is damaged" in result.err and "checksum" in result.err
    assert first_resumed_epoch(run) == k  # from the spare, after epoch k - 1
    assert read_log(run / "log.csv") == base["rows"]


def test_all_states_damaged_restarts_cleanly_and_pruning_keeps_the_fresh_ones(base, tmp_path,
                                                                             capsys):
    k = base["points"]["deep-wait"]
    run = resume_copy(base, "deep-wait", tmp_path / "run")
    for state in (run / "state").iterdir():
        (state / "state.json").write_text((state / "state.json").read_text().replace(
            '"epochs_done": ', '"epochs_done":  '))  # still valid JSON; not what was written
    # The restarted run fails again after epoch 3: the damaged, higher-numbered states must
    # not outlive the fresh ones, and run.json must claim what the state holds.
    result = cli_output(capsys, "resume", run, "--set", "callbacks[0].params.epoch=3",
                        traceback=True)
    assert result.code == 1 and "user callback failed at epoch 3" in result.err
    assert "damaged" in result.err and result.err.count("Traceback") == 1
    assert "no valid saved state: the run starts again from epoch 1" in result.err
    assert sorted(p.name for p in (run / "state").iterdir()) == ["epoch-00002", "epoch-00003"]
    assert json.loads((run / "run.json").read_text())["epochs_done"] == 3
    assert k > 3
    result = resume(capsys, run)
    assert result.code == 0, result.err
    assert first_resumed_epoch(run) == 4
    assert read_log(run / "log.csv") == base["rows"]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_bytes_flipped_in_random_state_files_never_give_a_traceback(base, seed,
                                                                           tmp_path, capsys):
    """Resume either continues from the newest state left whole or starts again, and ends
    exactly like the uninterrupted run (cli_output fails on any traceback)."""
    rng = random.Random(seed)
    k = base["points"]["deep-wait"]
    run = resume_copy(base, "deep-wait", tmp_path / "run")
    states = sorted((run / "state").iterdir())
    hit: dict[int, set[str]] = {}
    for _ in range(rng.randint(1, 4)):
        state, name = rng.choice(states), rng.choice(STATE_FILES)
        path = state / name
        data = bytearray(path.read_bytes())
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(len(data))] ^= rng.randint(1, 255)
        path.write_bytes(bytes(data))
        hit.setdefault(int(state.name[-5:]), set()).add(name)
    result = resume(capsys, run)
    assert result.code == 0, result.err
    whole = [e for e in (k, k - 1) if e not in hit]
    # A flip in checksums.json could leave it meaning the same (a space for a tab), so a
    # state whose only hit is there may or may not be used; every other hit is caught.
    maybe = [e for e in (k, k - 1) if hit.get(e) == {"checksums.json"}]
    allowed = {max(whole + chosen, default=0) + 1
               for chosen in ([], maybe[:1], maybe[1:], maybe)}
    assert first_resumed_epoch(run) in allowed, (hit, result.err)
    assert read_log(run / "log.csv") == base["rows"]
