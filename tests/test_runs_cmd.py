"""`cbrun runs`: the table and the JSON of a folder of runs, broken ones included."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import FAKE_RUN, cli_output, fake_run
from rich.console import Console

from cbrun.commands.runs import format_duration, min_table_width, run_row, runs_table
from cbrun.run import runinfo
from cbrun.run.rundir import run_lock
from cbrun.run.runinfo import find_runs, read_run_info

HOST = socket.gethostname()


@pytest.fixture
def utc(monkeypatch):
    """Show start times in UTC whatever the machine's zone, so the table is fixed text."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def folder(tmp_path) -> Path:
    runs = tmp_path / "runs"
    fake_run(runs, "20261121-153012-digits-mlp")
    fake_run(runs, "20261121-160000-digits-full", status="completed", epochs_planned=30,
             epochs_done=30, best={"epoch": 28, "value": 0.0831}, stopped_early_at=None,
             duration_s=3725.0, created="2026-11-21T16:00:00+00:00", segments=[])
    # Resumed two hours ago after 3.5 s of training: run.json adds a segment's time to
    # duration_s only when it ends, so the listing adds the running segment's.
    resumed = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    fake_run(runs, "20261121-170000-live", status="running", pid=os.getpid(), host=HOST,
             epochs_done=2, best={"epoch": 2, "value": 0.5388}, duration_s=3.5,
             created="2026-11-21T17:00:00+00:00", stopped_early_at=None,
             segments=[{"kind": "train", "started": "2026-11-21T17:00:00+00:00",
                        "first_epoch": 1, "last_epoch": 1, "status": "interrupted"},
                       {"kind": "resume", "started": resumed, "first_epoch": 2,
                        "status": None}])
    # kill -9 leaves "running" behind, its pid gone and its time uncounted (duration_s is
    # added when a segment ends); run.json was last written at its sixth epoch's end, 192.4 s
    # in, and the listing counts up to then.
    killed = fake_run(runs, "20261121-180000-killed", status="running", pid=_dead_pid(),
                      host=HOST, epochs_done=6, best={"epoch": 6, "value": 0.3858},
                      duration_s=0.0, created="2026-11-21T18:00:00+00:00",
                      stopped_early_at=None,
                      segments=[{"kind": "train", "started": "2026-11-21T18:00:00+00:00",
                                 "first_epoch": 1, "last_epoch": 6, "status": "running"}])
    last = datetime(2026, 11, 21, 18, 0, tzinfo=UTC).timestamp() + 192.4
    os.utime(killed / "run.json", (last, last))
    fake_run(runs, "20261121-190000-crashed", csv=False, status="failed", epochs_done=0,
             best=None, duration_s=0.8, created="2026-11-21T19:00:00+00:00",
             error="ValueError: shapes")
    broken = runs / "20261121-200000-broken"
    broken.mkdir()
    (broken / "run.json").write_text('{"id": "20261121-200000-broken", "status": "runn')
    shutil.copy(FAKE_RUN / "log.csv", broken / "log.csv")
    sparse = runs / "20261121-210000-sparse"
    sparse.mkdir()
    (sparse / "run.json").write_text('{"status": "interrupted", "epochs_done": "six"}')
    (runs / "notes").mkdir()  # neither run.json nor log.csv: not a run
    (runs / ".gitkeep").write_text("")
    return runs


def _dead_pid() -> int:
    # A pid that has just exited is free; the kernel does not hand it out again at once.
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def render(rows) -> str:
    console = Console(file=io.StringIO(), width=120, color_system=None)
    console.print(runs_table(rows))
    return console.file.getvalue()


@pytest.mark.usefixtures("utc")
def test_the_table_shows_every_run_and_survives_broken_ones(folder):
    rows = sorted((run_row(p) for p in find_runs(folder)), key=lambda r: r.info.id)
    assert [line.rstrip() for line in render(rows).splitlines()] == [
        "id                           status         epochs  best             at epoch  duration  started",
        "20261121-153012-digits-mlp   stopped_early   17/40  val_loss 0.3615        13     48.2s  2026-11-21 15:30",
        "20261121-160000-digits-full  completed       30/30  val_loss 0.0831        28    1h 02m  2026-11-21 16:00",
        "20261121-170000-live         running          2/40  val_loss 0.5388         2    2h 00m  2026-11-21 17:00",
        "20261121-180000-killed       interrupted      6/40  val_loss 0.3858         6    3m 12s  2026-11-21 18:00",
        "20261121-190000-crashed      failed           0/40  -                       -      0.8s  2026-11-21 19:00",
        "20261121-200000-broken       unreadable         17  val_loss 0.3615        13         -  -",
        "20261121-210000-sparse       interrupted         -  -                       -         -  -",
    ]


@pytest.mark.usefixtures("utc")
def test_on_an_80_column_terminal_ids_stay_whole_and_minor_columns_go(folder):
    rows = sorted((run_row(p) for p in find_runs(folder)), key=lambda r: r.info.id)
    console = Console(file=io.StringIO(), width=80, color_system=None)
    console.print(runs_table(rows, console.width))
    lines = [line.rstrip() for line in console.file.getvalue().splitlines()]
    assert lines[0].split() == ["id", "status", "epochs", "best", "at", "epoch"]
    assert [line.split()[0] for line in lines[1:8]] == [row.info.id for row in rows]
    assert lines[1].split() == ["20261121-153012-digits-mlp", "stopped_early", "17/40",
                                "val_loss", "0.3615", "13"]
    assert lines[8] == "(started and duration left out to fit 80 columns; --json has all)"
    assert "…" not in "".join(lines)
    assert max(len(line) for line in lines) <= 80


def test_on_a_very_narrow_terminal_the_best_wraps_and_ids_still_stay_whole(folder):
    rows = sorted((run_row(p) for p in find_runs(folder)), key=lambda r: r.info.id)
    table = runs_table(rows, 60)
    console = Console(file=io.StringIO(), width=max(60, min_table_width(table)),
                      color_system=None)
    console.print(table)
    text = console.file.getvalue()
    assert "…" not in text
    assert all(row.info.id in text for row in rows)
    # "val_loss 0.3615" on two lines: the value alone on the second.
    assert "0.3615" in [line.strip() for line in text.splitlines()]


@pytest.mark.usefixtures("utc")
def test_the_command_prints_the_table_and_why_a_run_json_is_unreadable(folder, capsys):
    code, out, err = cli_output(capsys, "runs", folder)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["id", "status", "epochs", "best", "at", "epoch", "duration",
                                "started"]
    assert [line.split()[0] for line in lines[1:8]] == sorted(p.name for p in find_runs(folder))
    assert len(lines) == 8
    assert err == (f"warning: {folder / '20261121-200000-broken' / 'run.json'}: not valid JSON "
                   "(line 1, column 44: Unterminated string starting at)\n"
                   f"warning: {folder / '20261121-210000-sparse' / 'run.json'}: ignored "
                   "epochs_done: input should be a valid integer (it holds 'six')\n")
    assert "\x1b[" not in out  # not a terminal: no colors


def test_json_lists_every_run_for_scripts(folder, capsys):
    code, out, _ = cli_output(capsys, "runs", folder, "--json")
    assert code == 0
    runs = {run["id"]: run for run in json.loads(out)}
    assert list(runs) == sorted(runs)
    assert runs["20261121-153012-digits-mlp"] == {
        "id": "20261121-153012-digits-mlp",
        "path": str(folder / "20261121-153012-digits-mlp"),
        "status": "stopped_early",
        "recorded_status": "stopped_early",
        "epochs_done": 17,
        "epochs_planned": 40,
        "monitor": "val_loss",
        "best_value": 0.3615227937698364,
        "best_epoch": 13,
        "stopped_early_at": 17,
        "resumed_at": [7],
        "duration_s": 48.2,
        "created": "2026-11-21T15:30:12.123456+00:00",
        "finished": "2026-11-21T15:31:02.500000+00:00",
        "problem": None,
        "test": {},  # no test split in this run
        "baseline": {},  # a run of before baselines
        "no_better_than_baseline": False,
        "sweep": None,  # no sweep's trial
        "overfit_batches": None,  # no debug run
    }
    killed = runs["20261121-180000-killed"]
    assert (killed["status"], killed["recorded_status"]) == ("interrupted", "running")
    live = runs["20261121-170000-live"]
    assert live["status"] == "running"
    # 3.5 s done, plus the running segment's time until the listing: at most until now.
    started = json.loads((folder / live["id"] / "run.json").read_text())[
        "segments"][1]["started"]
    running = (datetime.now(UTC) - datetime.fromisoformat(started)).total_seconds()
    assert 7200 + 3.5 <= live["duration_s"] <= 3.5 + running
    broken = runs["20261121-200000-broken"]
    assert broken["status"] == "unreadable" and "not valid JSON" in broken["problem"]
    # What run.json cannot say, the log can.
    assert (broken["epochs_done"], broken["best_epoch"]) == (17, 13)
    assert runs["20261121-210000-sparse"]["epochs_done"] is None


def test_a_single_run_directory_lists_itself(folder, capsys):
    code, out, _ = cli_output(capsys, "runs", folder / "20261121-153012-digits-mlp", "--json")
    assert code == 0
    assert [run["id"] for run in json.loads(out)] == ["20261121-153012-digits-mlp"]


def test_a_folder_with_only_a_log_lists_itself_as_its_parent_lists_it(tmp_path, capsys):
    (tmp_path / "exp1").mkdir()
    shutil.copy(FAKE_RUN / "log.csv", tmp_path / "exp1" / "log.csv")
    _, from_parent, _ = cli_output(capsys, "runs", tmp_path, "--json")
    code, itself, _ = cli_output(capsys, "runs", tmp_path / "exp1", "--json")
    assert code == 0
    assert json.loads(itself) == json.loads(from_parent)
    assert [run["id"] for run in json.loads(itself)] == ["exp1"]


@pytest.mark.usefixtures("utc")
def test_folders_of_runs_inside_the_folder_are_mentioned(folder, capsys):
    fake_run(folder / "sweep", "20261122-090000-lr-0.1")
    code, out, err = cli_output(capsys, "runs", folder)
    assert code == 0
    assert "sweep" not in out and "20261122-090000" not in out
    assert err.splitlines()[-1] == (f"note: not listed: {folder / 'sweep'} (folders of runs; "
                                    "name one to list it)")
    code, out, err = cli_output(capsys, "runs", folder, "--json")
    assert json.loads(out) and "not listed" in err  # stdout stays one JSON document


def test_a_directory_of_foreign_logs_lists_them_from_the_log(tmp_path, capsys):
    (tmp_path / "exp1").mkdir()
    shutil.copy(FAKE_RUN / "log.csv", tmp_path / "exp1" / "log.csv")
    code, out, _ = cli_output(capsys, "runs", tmp_path, "--json")
    assert code == 0
    (run,) = json.loads(out)
    assert (run["id"], run["status"], run["epochs_done"], run["best_epoch"]) == (
        "exp1", "unknown", 17, 13)


def test_an_empty_folder_says_so(tmp_path, capsys):
    assert cli_output(capsys, "runs", tmp_path) == (0, f"no runs in {tmp_path}\n", "")
    assert cli_output(capsys, "runs", tmp_path, "--json") == (0, "[]\n", "")


def test_a_missing_folder_is_a_usage_error(tmp_path, capsys):
    code, out, err = cli_output(capsys, "runs", tmp_path / "nowhere")
    assert (code, out) == (2, "")
    assert err.startswith(f"error: no such directory: {tmp_path / 'nowhere'}")


def test_the_default_folder_is_runs(tmp_path, capsys, monkeypatch):
    fake_run(tmp_path / "runs", "20261121-153012-digits-mlp")
    monkeypatch.chdir(tmp_path)
    code, out, _ = cli_output(capsys, "runs", "--json")
    assert code == 0
    assert [run["id"] for run in json.loads(out)] == ["20261121-153012-digits-mlp"]


def test_run_json_values_of_the_wrong_type_are_ignored(tmp_path):
    run = tmp_path / "odd"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({
        "status": 3, "epochs_done": True, "best": [1, 2], "monitor": "val_loss",
        "created": "yesterday", "duration_s": "fast",
        "segments": [{"kind": "resume", "first_epoch": 4}, "junk"],
    }))
    info = read_run_info(run)
    assert (info.id, info.status, info.epochs_done, info.best_epoch) == ("odd", "unknown", None,
                                                                          None)
    assert (info.created, info.duration_s, info.resume_epochs) == (None, None, (4,))


def test_a_list_instead_of_an_object_is_unreadable(tmp_path):
    (tmp_path / "run.json").write_text("[]")
    info = read_run_info(tmp_path)
    assert info.status == "unreadable" and "expected a JSON object" in info.problem


@pytest.mark.parametrize(
    "seconds, text",
    [(None, "-"), (0.04, "0.0s"), (48.25, "48.2s"), (59.96, "1m 00s"), (60, "1m 00s"),
     (192.4, "3m 12s"), (3599.6, "1h 00m"), (3600, "1h 00m"), (3725, "1h 02m"),
     (90000, "25h 00m")],
)
def test_durations_read_at_a_glance(seconds, text):
    assert format_duration(seconds) == text


# Is a `running` run still running? Its lock says so; a recorded pid only for older runs.


def test_a_held_lock_means_running_whatever_the_pid(tmp_path):
    run = fake_run(tmp_path, "20261121-170000-live", status="running", pid=_dead_pid(),
                   host=HOST)
    with run_lock(run):
        assert read_run_info(run).shown_status == "running"
    # The process let go of the lock (the kernel does so even on kill -9) and left
    # "running" behind.
    assert read_run_info(run).shown_status == "interrupted"


def test_a_free_lock_means_interrupted_even_when_the_pid_was_reused(tmp_path):
    # The pid now belongs to another process (this one); the lock is what counts.
    run = fake_run(tmp_path, "20261121-170000-reused", status="running", pid=os.getpid(),
                   host=HOST)
    with run_lock(run):
        pass
    assert read_run_info(run).shown_status == "interrupted"


@pytest.mark.parametrize("error, alive, shown", [
    (ProcessLookupError, False, "interrupted"),
    (PermissionError, True, "running"),  # the pid is someone else's process
    (OSError, None, "running"),  # the check failed: nothing is known, the record stands
])
def test_without_a_lock_file_an_older_run_falls_back_to_its_pid(tmp_path, monkeypatch, error,
                                                                alive, shown):
    run = fake_run(tmp_path, "20261121-170000-old", status="running", pid=4242, host=HOST)

    def kill(pid: int, signal: int) -> None:
        assert (pid, signal) == (4242, 0)
        raise error

    monkeypatch.setattr(runinfo.os, "kill", kill)
    info = read_run_info(run)
    assert (info.process_alive, info.shown_status) == (alive, shown)


def test_huge_integers_in_run_json_are_ignored_not_a_traceback(tmp_path, capsys):
    huge = "1" + "0" * 400  # JSON integers have no size limit; a float cannot hold this one
    run = tmp_path / "runs" / "20261121-170000-huge"
    run.mkdir(parents=True)
    shutil.copy(FAKE_RUN / "log.csv", run / "log.csv")
    (run / "run.json").write_text(
        f'{{"status": "running", "pid": {huge}, "host": "{HOST}", "duration_s": {huge}, '
        f'"epochs_done": {huge}, "epochs_planned": {huge}, "stopped_early_at": {huge}, '
        f'"best": {{"epoch": {huge}, "value": {huge}}}}}')
    info = read_run_info(run)
    assert (info.process_alive, info.duration_s, info.epochs_done, info.epochs_planned,
            info.stopped_early_at, info.best_epoch, info.best_value) == (None,) * 7
    code, out, err = cli_output(capsys, "runs", tmp_path / "runs", "--json")
    assert code == 0
    # One warning line, saying which values were ignored and why.
    assert err.count("\n") == 1 and err.startswith("warning: ")
    assert "ignored duration_s: input should be a valid number" in err
    assert "pid: input should be less than 2147483648" in err
    assert json.loads(out)[0]["epochs_done"] == 17  # from the log, as for a missing value
    assert cli_output(capsys, "plot", run, "-o", tmp_path / "p.png")[0] == 0


def test_an_interrupted_runs_time_is_counted_once(tmp_path):
    """Ctrl-C ends its segment and adds its time to duration_s; the listing adds nothing."""
    run = fake_run(tmp_path, "20261121-183000-stopped", status="interrupted",
                   duration_s=2.306, segments=[
                       {"kind": "train", "started": "2026-11-21T18:30:00+00:00",
                        "finished": "2026-11-21T18:30:02.306000+00:00", "first_epoch": 1,
                        "last_epoch": 3, "status": "interrupted"}])
    assert read_run_info(run).elapsed_s() == 2.306


def _sweep(runs: Path, name: str, trials: int) -> Path:
    """A sweep directory as `cbrun sweep` lays it out: sweep.json, and a run directory per
    trial under trials/ whose run.json names its trial."""
    sweep_dir = runs / "sweeps" / name
    sweep_dir.mkdir(parents=True)
    (sweep_dir / "sweep.json").write_text(json.dumps({"name": name, "status": "completed"}))
    for number in range(trials):
        fake_run(sweep_dir / "trials", f"20261122-10000{number}-{name}-t{number}",
                 sweep={"id": "abc", "trial": number, "study": name, "metric": "val_loss",
                        "direction": "minimize", "pruner": {"type": "none"},
                        "storage": f"sqlite:///{sweep_dir}/study.db",
                        "sweep_dir": str(sweep_dir)})
    return sweep_dir


def test_sweep_trials_are_named_and_listed_with_trials(folder, capsys):
    digits = _sweep(folder, "digits-search", 3)
    _sweep(folder, "wide", 1)
    plain = cli_output(capsys, "runs", folder)
    assert plain.code == 0 and "t0" not in plain.out and "trial" not in plain.out
    assert plain.err.splitlines()[-1] == (
        f"note: not listed: 4 sweep trials in {digits} (3), {folder / 'sweeps' / 'wide'} (1); "
        f"--trials lists them")

    listed = cli_output(capsys, "runs", folder, "--trials")
    assert listed.code == 0 and "not listed" not in listed.err
    lines = listed.out.splitlines()
    assert lines[0].split()[:3] == ["id", "trial", "status"]
    trial_lines = [line.split() for line in lines if "-t" in line.split()[0]]
    assert [cells[:3] for cells in trial_lines] == [
        ["20261122-100000-digits-search-t0", "digits-search", "#0"],
        ["20261122-100000-wide-t0", "wide", "#0"],
        ["20261122-100001-digits-search-t1", "digits-search", "#1"],
        ["20261122-100002-digits-search-t2", "digits-search", "#2"]]
    # An ordinary run has no trial.
    assert next(line for line in lines if "digits-full" in line).split()[1] == "-"

    found = json.loads(cli_output(capsys, "runs", folder, "--trials", "--json").out)
    marks = {row["id"]: row["sweep"] for row in found}
    assert marks["20261122-100002-digits-search-t2"] == {"name": "digits-search", "trial": 2}
    assert marks["20261121-160000-digits-full"] is None
    assert len(found) == 7 + 4


def test_a_sweep_directory_or_its_parent_lists_its_trials(folder, capsys):
    digits = _sweep(folder, "digits-search", 2)
    for where in (digits, folder / "sweeps"):
        plain = cli_output(capsys, "runs", where)
        assert "note: not listed: 2 sweep trials" in plain.err, plain.err
        assert "folders of runs" not in plain.err  # trials/ is named as the sweep's
        listed = cli_output(capsys, "runs", where, "--trials")
        ids = [line.split()[0] for line in listed.out.splitlines()[1:]]
        assert ids == ["20261122-100000-digits-search-t0", "20261122-100001-digits-search-t1"]
    # The trials folder itself is a folder of runs, each marked as the trial it is.
    direct = cli_output(capsys, "runs", digits / "trials")
    assert [line.split()[:3] for line in direct.out.splitlines()[1:]] == [
        ["20261122-100000-digits-search-t0", "digits-search", "#0"],
        ["20261122-100001-digits-search-t1", "digits-search", "#1"]]
    # A trial whose run.json cannot be read is still marked by the folder it is in.
    broken = digits / "trials" / "20261122-100001-digits-search-t1" / "run.json"
    broken.write_text("{")
    listed = cli_output(capsys, "runs", folder, "--trials")
    assert next(line for line in listed.out.splitlines() if "-t1" in line).split()[:3] == [
        "20261122-100001-digits-search-t1", "digits-search", "unreadable"]
