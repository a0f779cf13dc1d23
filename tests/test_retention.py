"""Checkpoints kept on purpose: ModelCheckpoint's keep_best / keep_last (cbrun's own keys).

A 50-epoch run keeps its best 3 and its last file, and `best` and the last file give back
what log.csv logged for their epochs; a run killed mid-way keeps, after its resume, the
files an uninterrupted run keeps, and a file any saved state still lists is never gone;
every mistake in the keys is one line at its place in the file.
"""

from __future__ import annotations

import json
import shutil
import signal
import textwrap
from pathlib import Path

import pytest
import yaml
from conftest import (
    BASE_YAML,
    HANG_S,
    cbrun_process,
    cli,
    cli_output,
    only_run,
    read_log,
    tiny_config,
    write_config,
)
from test_resume import interrupt_all, log_of

from cbrun.config.load import load_config
from cbrun.errors import ConfigError

TEMPLATE = "checkpoints/ep{epoch:03d}-val_loss{val_loss:.4f}.keras"


def keeping(epochs: int, keep_best: int, keep_last: int) -> dict:
    """A digits MLP that overfits within a few dozen epochs at a high learning rate, so its
    best epoch comes long before its last; one step an epoch keeps 50 epochs cheap."""
    return tiny_config(
        name="keep",
        data={"source": "digits", "validation_split": 0.2, "batch_size": 256},
        model={"input_shape": [64], "layers": [
            {"type": "Rescaling", "scale": 0.0625},
            {"type": "Dense", "units": 32, "activation": "relu"},
            {"type": "Dense", "units": 10, "activation": "softmax"}]},
        compile={"optimizer": {"type": "Adam", "learning_rate": 0.05},
                 "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
        fit={"epochs": epochs},
        callbacks=[{"type": "ModelCheckpoint", "filepath": TEMPLATE,
                    "keep_best": keep_best, "keep_last": keep_last}])


def kept_names(rows: list[dict[str, str]], best: int, last: int) -> set[str]:
    """What keep_best / keep_last must leave after these log.csv rows: the files of the
    `best` lowest val_loss (the earlier on a tie) and of the `last` newest epochs."""
    ranked = sorted(range(len(rows)), key=lambda i: (float(rows[i]["val_loss"]), i))
    epochs = {i + 1 for i in ranked[:best]} | {len(rows) - j for j in range(last)}
    return {f"ep{e:03d}-val_loss{float(rows[e - 1]['val_loss']):.4f}.keras" for e in epochs}


def files_in(run_dir: Path) -> set[str]:
    folder = run_dir / "checkpoints"
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def best_epoch(rows: list[dict[str, str]]) -> int:
    return min(range(len(rows)), key=lambda i: (float(rows[i]["val_loss"]), i)) + 1


# ------------------------------------------------------------------ 50 epochs, best 3, last 1

@pytest.fixture(scope="module")
def long_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("retention")
    path = write_config(folder, keeping(50, keep_best=3, keep_last=1))
    assert cli("train", path, "--runs-dir", folder / "runs", "--quiet") == 0
    return only_run(folder / "runs")


def test_a_50_epoch_run_keeps_its_best_3_and_its_last_file(long_run):
    rows = read_log(long_run / "log.csv")
    assert len(rows) == 50
    files = files_in(long_run)
    assert len(files) <= 4
    assert files == kept_names(rows, best=3, last=1)
    # What makes it a test of both keys: the best epoch is not the last one.
    assert best_epoch(rows) < 50


def evaluated(capsys, run_dir: Path, checkpoint: str) -> dict:
    code, out, err = cli_output(capsys, "evaluate", run_dir, "--checkpoint", checkpoint,
                                "--json")
    assert code == 0, err
    return json.loads(out)


def test_best_and_last_give_back_their_logged_values(long_run, capsys):
    import cbrun

    rows = read_log(long_run / "log.csv")
    best = best_epoch(rows)
    newest = next(n for n in files_in(long_run) if n.startswith("ep050-"))
    for checkpoint, epoch in (("best", best), (f"checkpoints/{newest}", 50), ("last", 50)):
        result = evaluated(capsys, long_run, checkpoint)
        row = rows[epoch - 1]
        assert result["metrics"]["loss"] == pytest.approx(float(row["val_loss"]), abs=1e-6)
        assert result["metrics"]["accuracy"] == pytest.approx(float(row["val_accuracy"]),
                                                              abs=1e-6)
    assert evaluated(capsys, long_run, "best")["epoch"] == best
    # export and predict ask the same place (cbrun/run/checkpoints.py).
    assert cbrun.load_run(long_run).checkpoint("best").epoch == best


def test_a_best_file_that_is_gone_is_one_line(long_run, tmp_path, capsys):
    copy = tmp_path / long_run.name
    shutil.copytree(long_run, copy)
    rows = read_log(copy / "log.csv")
    best = best_epoch(rows)
    (copy / "checkpoints" / next(n for n in files_in(copy)
                                 if n.startswith(f"ep{best:03d}-"))).unlink()
    code, _out, err = cli_output(capsys, "evaluate", copy, "--checkpoint", "best")
    assert code == 2
    assert err.count("\n") == 1 and f"epoch {best}" in err and "was it deleted?" in err


def test_a_best_file_keep_last_deleted_is_told_so(long_run, tmp_path, capsys):
    """A checkpoint that keeps only its newest files cannot give the best epoch back, and a
    file it deleted is named as deleted, with the files it kept."""
    copy = tmp_path / long_run.name
    shutil.copytree(long_run, copy)
    resolved = yaml.safe_load((copy / "resolved.yaml").read_text())
    resolved["callbacks"][0]["keep_best"] = None
    (copy / "resolved.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
    best = best_epoch(read_log(copy / "log.csv"))
    (copy / "checkpoints" / next(n for n in files_in(copy)
                                 if n.startswith(f"ep{best:03d}-"))).unlink()
    code, _out, err = cli_output(capsys, "evaluate", copy, "--checkpoint", "best")
    assert code == 2 and err.count("\n") == 1
    assert f"epoch {best}" in err and "keeps only its newest files (keep_last: 1)" in err
    code, _out, err = cli_output(capsys, "evaluate", copy, "--checkpoint",
                                "checkpoints/ep020-val_loss0.1000.keras")
    assert code == 2 and err.count("\n") == 1
    assert "deleted the others" in err and "checkpoints/ep050-" in err


def test_best_of_a_template_of_metrics_alone_is_the_best_file(long_run, tmp_path, capsys):
    """`val_loss{val_loss:.4f}.keras` names each kept file by its value alone: the best is
    the file of the best epoch's value, not the last name in sorted order (the worst)."""
    copy = tmp_path / long_run.name
    shutil.copytree(long_run, copy)
    rows = read_log(copy / "log.csv")
    for name in files_in(copy):
        value = float(rows[int(name[2:5]) - 1]["val_loss"])
        (copy / "checkpoints" / name).rename(copy / "checkpoints" / f"val_loss{value:.4f}.keras")
    resolved = yaml.safe_load((copy / "resolved.yaml").read_text())
    resolved["callbacks"][0].update(filepath="checkpoints/val_loss{val_loss:.4f}.keras",
                                    save_best_only=True)
    (copy / "resolved.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
    best = best_epoch(rows)
    result = evaluated(capsys, copy, "best")
    assert result["epoch"] == best
    assert result["metrics"]["loss"] == pytest.approx(float(rows[best - 1]["val_loss"]),
                                                      abs=1e-6)


# ------------------------------------------------------------------ a kill, then a resume

EPOCHS = 12
KILLED_IN = 5  # the state write of epoch 5: after the checkpoint dropped a file


@pytest.fixture(scope="module")
def kills(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("retention-kills")
    config = write_config(root, keeping(EPOCHS, keep_best=2, keep_last=1))
    # The killed runs need processes of their own; the uninterrupted run and the resumes
    # run in this process (cbrun starts each run from a clean Keras session; a process
    # start and a TensorFlow import saved for each).
    procs = {
        "in-state-write": cbrun_process(
            "train", config, "--runs-dir", root / "in-state-write", "-q",
            env={"CBRUN_FAULT_KILL_IN_STATE_WRITE": str(KILLED_IN)}),
        "after-7": cbrun_process("train", config, "--runs-dir", root / "after-7", "-q")}
    codes = {name: code for name, (code, _) in interrupt_all({"after-7": (
        procs["after-7"], lambda: log_of(root / "after-7"), 7, signal.SIGKILL)}).items()}
    codes["baseline"] = cli("train", config, "--runs-dir", root / "baseline", "-q")
    procs["in-state-write"].communicate(timeout=HANG_S)
    codes["in-state-write"] = procs["in-state-write"].returncode
    killed = only_run(root / "in-state-write")
    # Before any resume: what each saved state lists as kept, and whether it is there.
    listed = {}
    for state in sorted((killed / "state").glob("epoch-*")):
        meta = json.loads((state / "state.json").read_text())
        record = meta["callbacks"][0]["state"]["cbrun_retention"]
        listed[state.name] = {entry[0]: (killed / entry[0]).is_file()
                              for entry in record["kept"]}
    # The same killed run, resumed with another learning rate: epoch 5 on differs.
    changed = root / "changed" / killed.name
    shutil.copytree(killed, changed)
    lookalike = changed / "checkpoints" / "ep01x-val_loss0.1000.keras"
    lookalike.write_text("mine")
    written_past = {n for n in files_in(killed) if int(n[2:5]) > KILLED_IN - 1}
    codes["resume in-state-write"] = cli("resume", killed, "-q")
    codes["resume after-7"] = cli("resume", only_run(root / "after-7"), "-q")
    codes["resume changed"] = cli("resume", changed, "-q", "--set",
                                  "compile.optimizer.learning_rate=0.02")
    return {"root": root, "codes": codes, "listed": listed, "changed": changed,
            "lookalike": lookalike, "written_past": written_past}


def test_the_runs_were_killed_and_resumed(kills):
    codes = kills["codes"]
    assert codes["baseline"] == 0
    assert codes["in-state-write"] == -signal.SIGKILL
    assert codes["after-7"] == -signal.SIGKILL
    for name in ("in-state-write", "after-7", "changed"):
        assert codes[f"resume {name}"] == 0, name


def test_every_file_a_saved_state_keeps_is_still_there_after_a_kill(kills):
    listed = kills["listed"]
    assert list(listed) == ["epoch-00003", "epoch-00004"]
    assert all(all(there.values()) for there in listed.values()), listed
    # The case that matters happened: epoch 5 dropped a file that state 4 keeps.
    rows = read_log(only_run(kills["root"] / "baseline") / "log.csv")
    assert set(listed["epoch-00004"]) == {f"checkpoints/{n}"
                                          for n in kept_names(rows[:4], 2, 1)}
    assert kept_names(rows[:4], 2, 1) - kept_names(rows[:5], 2, 1)


@pytest.mark.parametrize("name", ["in-state-write", "after-7"])
def test_a_resumed_run_keeps_the_files_an_uninterrupted_one_keeps(kills, name):
    baseline = only_run(kills["root"] / "baseline")
    resumed = only_run(kills["root"] / name)
    assert files_in(baseline) == kept_names(read_log(baseline / "log.csv"), 2, 1)
    assert files_in(resumed) == files_in(baseline)


def test_a_resume_that_goes_another_way_leaves_nothing_stale(kills):
    """The killed run wrote epoch 5's file before it died; the resume trains epoch 5 again
    with another learning rate, under another name. The old file goes, and a file of the
    user's that only looks like a checkpoint stays."""
    changed = kills["changed"]
    rows = read_log(changed / "log.csv")
    assert len(rows) == EPOCHS
    assert kills["written_past"] and not kills["written_past"] & files_in(changed)
    assert files_in(changed) == kept_names(rows, 2, 1) | {kills["lookalike"].name}
    assert kills["lookalike"].read_text() == "mine"


# ------------------------------------------------------------------ mistakes in the keys

BASE = BASE_YAML + """\
callbacks:
  - type: ModelCheckpoint
"""


@pytest.mark.parametrize("keys, where, said", [
    ("filepath: checkpoints/best.keras\nkeep_best: 3\n", "keep_best",
     "names a single file that every save overwrites"),
    ("filepath: checkpoints/last.keras\nkeep_last: 2\n", "keep_last",
     "names a single file that every save overwrites"),
    (f"filepath: '{TEMPLATE}'\nkeep_best: 0\n", "keep_best", "keep_best must be 1 or more"),
    (f"filepath: '{TEMPLATE}'\nkeep_last: -1\n", "keep_last", "keep_last must be 1 or more"),
    (f"filepath: '{TEMPLATE}'\nkeep_best: '3'\n", "keep_best", "whole number of files"),
    (f"filepath: '{TEMPLATE}'\nkeep_best: 2.5\n", "keep_best", "whole number of files"),
    (f"filepath: '{TEMPLATE}'\nkeep_last: true\n", "keep_last", "whole number of files"),
    ("filepath: 'checkpoints/ep{epoch:03d}.keras'\nkeep_best: 2\nmonitor: val_f1\n",
     "monitor", "never logs"),
    (("filepath: 'checkpoints/ep{epoch:03d}.keras'\nkeep_best: 2\nsave_freq: 5\n"
      "monitor: val_loss\n"), "keep_best", "before validation has run"),
])
def test_a_mistake_in_the_keys_is_one_problem_at_its_line(tmp_path, keys, where, said):
    text = BASE + textwrap.indent(keys, "    ")
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    (problem,) = raised.value.problems
    assert said in problem.message
    assert problem.field_path == f"callbacks[0].{where}"
    assert text.splitlines()[problem.line - 1].strip().startswith(f"{where}:")


def test_keep_best_needs_the_monitor_logged(tmp_path, capsys):
    """Without validation data the default monitor, val_loss, is never logged: keep_best
    could rank nothing. (Keras reads monitor only with save_best_only, so without keep_best
    the same checkpoint is fine.)"""
    config = tiny_config(data={"source": "digits", "batch_size": 64}, callbacks=[
        {"type": "ModelCheckpoint", "filepath": "checkpoints/ep{epoch:03d}.keras",
         "keep_best": 2}])
    code, out, err = cli_output(capsys, "validate", write_config(tmp_path, config))
    assert code == 2 and "no validation data" in out + err
    del config["callbacks"][0]["keep_best"]
    config["callbacks"][0]["keep_last"] = 2
    code, out, err = cli_output(capsys, "validate", write_config(tmp_path, config))
    assert code == 0, err


def test_a_file_that_cannot_be_deleted_stays_waiting_and_is_told_at_the_end(tmp_path, capsys):
    """A delete that fails (a file held open elsewhere on Windows; here a folder in its
    place) does not end the run: the file is tried again, and named when the run ends."""
    from cbrun.callbacks.model_checkpoint import Retention

    (tmp_path / "checkpoints" / "ep001.keras").mkdir(parents=True)
    (tmp_path / "checkpoints" / "ep002.keras").write_text("model")
    retention = Retention(tmp_path, None, 1, "val_loss")
    retention.wrote("checkpoints/ep001.keras", 1, 0.5, True)
    retention.wrote("checkpoints/ep002.keras", 2, 0.4, True)
    retention.delete(3, None)
    retention.delete(None, None)
    assert retention.leaving == [["checkpoints/ep001.keras", 2]]
    assert "could not delete checkpoints/ep001.keras" in capsys.readouterr().err
    assert (tmp_path / "checkpoints" / "ep002.keras").is_file()
