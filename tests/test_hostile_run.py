"""A run directory that holds links, or sits where nothing can be written: cbrun refuses
with one line and writes nothing anywhere, checked by listing the whole temp tree."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import HANG_S, cbrun_process, cli, cli_output, only_run, tiny_config, write_config

CALLBACKS = [
    {"type": "ModelCheckpoint", "filepath": "checkpoints/ep{epoch:02d}.keras"},
    {"type": "TensorBoard", "log_dir": "tensorboard"},
    {"type": "CSVLogger", "filename": "log.csv"},
]


def tree(root: Path) -> dict[str, tuple]:
    """Every entry under root, links not followed: kind, size, content hash or link target."""
    found = {}
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in dirs + files:
            path = Path(folder, name)
            info = path.lstat()
            if path.is_symlink():
                found[str(path)] = ("link", os.readlink(path))
            elif path.is_file():
                found[str(path)] = ("file", info.st_size, info.st_nlink,
                                    hashlib.sha256(path.read_bytes()).hexdigest())
            else:
                found[str(path)] = ("dir",)
    return found


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A completed 2-epoch run, and one killed while writing its second epoch's state."""
    folder = tmp_path_factory.mktemp("hostile")
    done = write_config(folder, tiny_config(fit={"epochs": 2}, callbacks=CALLBACKS))
    assert cli("train", done, "--runs-dir", folder / "done", "--quiet") == 0
    killed = cbrun_process("train", done, "--runs-dir", folder / "killed", "--quiet",
                           env={"CBRUN_FAULT_KILL_IN_STATE_WRITE": "2"})
    killed.communicate(timeout=HANG_S)
    assert killed.returncode == -9
    return {"completed": only_run(folder / "done"), "killed": only_run(folder / "killed")}


def _plant(run: Path, name: str, target: Path, hard: bool = False) -> None:
    place = run / name
    if place.is_dir() and not place.is_symlink():
        shutil.rmtree(place)
    elif place.exists() or place.is_symlink():
        place.unlink()
    place.parent.mkdir(parents=True, exist_ok=True)
    os.link(target, place) if hard else place.symlink_to(target)


PLANTS = ["model.keras", "resolved.yaml", "run.json", "log.csv", "config.yaml", ".lock",
          "checkpoints", "tensorboard", "state", "tensorboard/train", "checkpoints/ep03.keras",
          ".run.json.tmp-{pid}"]  # the temporary name run.json is written under


@pytest.mark.parametrize("which, args", [("killed", []), ("completed", ["--epochs", "3"])])
@pytest.mark.parametrize("name", PLANTS)
def test_a_link_planted_in_a_run_is_never_written_through(runs, tmp_path, capsys, which,
                                                          args, name):
    name = name.format(pid=os.getpid())  # in-process: the test's pid is cbrun's
    run = tmp_path / "runs" / runs[which].name
    shutil.copytree(runs[which], run)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("not cbrun's\n")
    target = outside if name in ("checkpoints", "tensorboard", "state",
                                 "tensorboard/train") else outside / "precious"
    _plant(run, name, target)
    before = tree(tmp_path)

    code, _, err = cli_output(capsys, "resume", run, *args, "--quiet")
    assert code == 1
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert f"{run / name} is a symbolic link" in err
    assert tree(tmp_path) == before  # nothing written, inside the run or out of it


def test_a_hard_linked_log_is_refused(runs, tmp_path, capsys):
    run = tmp_path / "runs" / runs["completed"].name
    shutil.copytree(runs["completed"], run)
    outside = tmp_path / "precious.csv"
    outside.write_text("epoch,loss\n")
    _plant(run, "log.csv", outside, hard=True)
    before = tree(tmp_path)
    code, _, err = cli_output(capsys, "resume", run, "--epochs", "3")
    assert code == 1
    assert "log.csv is a hard link" in err and len(err.strip().splitlines()) == 1
    assert tree(tmp_path) == before


PLANTER = """
import shutil
from pathlib import Path

import keras


class Planter(keras.callbacks.Callback):
    '''Replaces `name` in the run directory with a link to `target` at `hook` of the first
    epoch (or of the end of training): a link that appears while the run trains.'''

    def __init__(self, runs, name, target, hook):
        super().__init__()
        self.runs, self.name, self.target, self.hook = Path(runs), name, target, hook

    def plant(self):
        place = next(self.runs.iterdir()) / self.name
        if place.is_dir() and not place.is_symlink():
            shutil.rmtree(place)
        elif place.exists() or place.is_symlink():
            place.unlink()
        place.symlink_to(self.target)

    def on_epoch_begin(self, epoch, logs=None):
        if self.hook == "epoch_begin" and epoch == 0:
            self.plant()

    def on_epoch_end(self, epoch, logs=None):
        if self.hook == "epoch_end" and epoch == 0:
            self.plant()

    def on_train_end(self, logs=None):
        if self.hook == "train_end":
            self.plant()
"""


def _train_with_planter(tmp_path, capsys, name, hook, *more_callbacks):
    (tmp_path / "planter.py").write_text(PLANTER)
    outside, runs_dir = tmp_path / "outside", tmp_path / "runs"
    outside.mkdir()
    (outside / "precious").write_text("not cbrun's\n")
    folder = name in ("tensorboard", "state", "checkpoints")
    config = write_config(tmp_path, tiny_config(fit={"epochs": 2}, callbacks=[
        {"type": "Custom", "class": "planter:Planter",
         "params": {"runs": str(runs_dir), "name": name, "hook": hook,
                    "target": str(outside if folder else outside / "precious")}},
        *more_callbacks]))

    def outside_the_runs():
        return {path: entry for path, entry in tree(tmp_path).items()
                if not path.startswith(str(runs_dir))}

    before = outside_the_runs()
    result = cli_output(capsys, "train", config, "--runs-dir", runs_dir, "--quiet")
    return result, before, outside_the_runs(), only_run(runs_dir)


@pytest.mark.parametrize("name, hook", [
    ("tensorboard", "epoch_begin"), ("log.csv", "epoch_begin"), ("run.json", "epoch_begin"),
    ("state", "epoch_begin"), ("state", "epoch_end"), ("model.keras", "train_end")])
def test_a_link_planted_while_training_is_never_written_through(tmp_path, capsys, name, hook):
    """Every write of cbrun and of the callbacks (CSVLogger, TensorBoard, run.json, the
    state, model.keras): the run fails in one line naming the link, and nothing outside the
    runs folder changed (the whole temp tree listed before and after)."""
    (code, _out, err), before, after, run = _train_with_planter(
        tmp_path, capsys, name, hook, *CALLBACKS[1:])
    assert code == 1
    _one_line(err, str(run / name))
    assert "is a symbolic link" in err or "leads outside the run directory" in err
    assert after == before
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "failed"


def test_a_link_planted_while_training_stops_the_checkpoint(tmp_path, capsys):
    """Planted in the same epoch end, after RunGuard's check: where a template is formatted
    and written, its real path is checked again."""
    (code, _out, err), before, after, _run = _train_with_planter(
        tmp_path, capsys, "checkpoints", "epoch_end", CALLBACKS[0])
    assert code == 1
    assert "ModelCheckpoint filepath" in err and "leads outside the run directory" in err
    assert after == before


# ---------------------------------------------------------------- nowhere to write


@pytest.fixture
def read_only(tmp_path):
    """A tmpfs mounted here, made read-only by `remount(folder)`; skipped without mount."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(folder)],
                      capture_output=True, check=False).returncode:
        pytest.skip("mounting a tmpfs needs root")

    def remount():
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)

    yield folder, remount
    subprocess.run(["umount", str(folder)], check=True)


def _one_line(err: str, *words: str) -> None:
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert all(w in err for w in words), err


def test_runs_dir_that_cannot_be_created(tmp_path, capsys, read_only):
    config = write_config(tmp_path, tiny_config())
    (tmp_path / "a-file").write_text("")
    folder, remount = read_only
    remount()
    for runs_dir, says in (("/proc/cbrun-runs", "No such file or directory"),
                           (tmp_path / "a-file" / "runs", "Not a directory"),
                           (folder / "runs", "Read-only file system"),
                           (folder, "Read-only file system")):
        before = tree(tmp_path)
        code, _, err = cli_output(capsys, "train", config, "--runs-dir", runs_dir)
        assert code == 2
        _one_line(err, "cannot create", says)
        assert tree(tmp_path) == before


def test_resume_on_a_read_only_filesystem(runs, capsys, read_only):
    folder, remount = read_only
    for which, args in (("killed", []), ("completed", ["--epochs", "3"])):
        shutil.copytree(runs[which], folder / which)
        (folder / which / ".lock").unlink()  # the lock file must be created: no way to
    remount()
    before = tree(folder)
    for which, args in (("killed", []), ("completed", ["--epochs", "3"])):
        code, _, err = cli_output(capsys, "resume", folder / which, *args)
        assert code == 1
        _one_line(err, ".lock", "Read-only file system")
    assert tree(folder) == before


def test_resume_keeps_its_lock_on_a_read_only_filesystem_with_the_lock_there(
        runs, capsys, read_only):
    folder, remount = read_only
    shutil.copytree(runs["killed"], folder / "run")
    remount()
    code, _, err = cli_output(capsys, "resume", folder / "run")
    assert code == 1
    _one_line(err, "Read-only file system")


def test_a_subprocess_train_into_proc_prints_one_line(tmp_path):
    """The same through the real entry point: no traceback reaches the terminal."""
    config = write_config(tmp_path, tiny_config())
    result = subprocess.run([sys.executable, "-m", "cbrun", "train", str(config),
                             "--runs-dir", "/proc/1/cbrun"], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 2
    _one_line(result.stderr, "cannot create run directories under /proc/1/cbrun")
