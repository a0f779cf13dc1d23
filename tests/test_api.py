"""The Python API: cbrun.train, cbrun.resume, cbrun.load_run share the CLI's code, so a
run trained from Python is the run the CLI makes, and errors are exceptions."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

import cbrun
from cbrun.errors import CbrunError, ConfigError, UsageError
from tests.conftest import HANG_S, cli, only_run, tiny_config, write_config
from tests.helpers.light import run_python

CONFIG = tiny_config(name="api", fit={"epochs": 3}, callbacks=[
    {"type": "ModelCheckpoint", "monitor": "val_loss", "save_best_only": True,
     "filepath": "checkpoints/ep{epoch:03d}-{val_loss:.4f}.keras"}])
# `auto` chooses by the time a batch takes on this machine now: the two runs are compared.
CONFIG["compile"]["steps_per_execution"] = 1
# What differs between two runs of one config: when and where they ran.
PER_PROCESS = {"id", "created", "finished", "duration_s", "pid", "command", "segments"}


@pytest.fixture(scope="module")
def both(tmp_path_factory) -> tuple[Path, Path, cbrun.Run]:
    folder = tmp_path_factory.mktemp("api")
    path = write_config(folder, CONFIG)
    assert cli("train", path, "--runs-dir", folder / "cli", "--quiet") == 0
    run = cbrun.train(path, runs_dir=folder / "api", quiet=True)
    return only_run(folder / "cli"), only_run(folder / "api"), run


def _files(run_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*"))


def test_train_from_python_makes_the_run_the_cli_makes(both):
    by_cli, by_api, run = both
    assert run.run_dir == by_api and run.status == "completed"
    assert _files(by_cli) == _files(by_api)
    assert (by_cli / "log.csv").read_bytes() == (by_api / "log.csv").read_bytes()
    for name in ("config.yaml", "resolved.yaml"):
        assert (by_cli / name).read_bytes() == (by_api / name).read_bytes()
    cli_record, api_record = (json.loads((d / "run.json").read_text()) for d in both[:2])
    assert {k: v for k, v in cli_record.items() if k not in PER_PROCESS} == \
           {k: v for k, v in api_record.items() if k not in PER_PROCESS}
    assert api_record["command"][:2] == ["cbrun", "train"]
    assert [s["status"] for s in api_record["segments"]] == ["completed"]


def test_load_run_reads_history_checkpoints_and_model(both):
    _, by_api, _ = both
    run = cbrun.load_run(by_api)
    with (by_api / "log.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(run.history) == len(rows) == 3
    for got, row in zip(run.history, rows, strict=True):
        assert got.keys() == row.keys()
        assert got["epoch"] == int(row["epoch"])
        assert got["val_loss"] == float(row["val_loss"])
    assert run.config.name == "api" and run.record.epochs_done == 3
    assert run.checkpoints[0] == by_api / "model.keras"
    assert all(p.parent.name == "checkpoints" for p in run.checkpoints[1:])
    best = run.checkpoint("best")
    assert best.path in run.checkpoints
    model = run.model("best")
    assert model.output_shape == (None, 10)
    result = run.evaluate(split="validation", checkpoint="best")
    assert abs(result.metrics["loss"] - run.history[best.epoch - 1]["val_loss"]) < 1e-6


def test_resume_from_python_trains_on(both, tmp_path):
    import shutil

    _, by_api, _ = both
    copy = tmp_path / by_api.name
    shutil.copytree(by_api, copy)
    run = cbrun.resume(copy, epochs=4, quiet=True)
    assert run.status == "completed" and len(run.history) == 4
    assert run.record.segments[-1].kind == "resume"


def test_errors_are_exceptions_not_exits(both, tmp_path):
    _, by_api, _ = both
    with pytest.raises(UsageError, match="not a run directory"):
        cbrun.load_run(tmp_path)
    with pytest.raises(UsageError, match="completed all 3 epochs"):
        cbrun.resume(by_api)
    bad = write_config(tmp_path, {**CONFIG, "fit": {"epochs": "three"}})
    with pytest.raises(ConfigError, match="fit.epochs"):
        cbrun.train(bad, runs_dir=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()
    with pytest.raises(CbrunError, match="path of a YAML config"):
        cbrun.train(CONFIG)


def test_the_api_imports_light():
    result = run_python(
        "import cbrun\n"
        "print(callable(cbrun.train), callable(cbrun.resume), callable(cbrun.load_run))\n"
        "import cbrun.engine.outputs, cbrun.commands.resume\n"
        "print(callable(cbrun.train), callable(cbrun.resume))\n")
    assert result.out.splitlines() == ["True True True", "True True"]
    assert not result.imported("tensorflow") and not result.imported("keras")


def test_train_runs_from_a_thread_other_than_the_main_one(tmp_path):
    """Signals reach only the main thread: from a worker thread cbrun trains without its
    Ctrl-C handling (Python refuses handlers there) instead of failing."""
    import threading

    path = write_config(tmp_path, tiny_config(name="thread", fit={"epochs": 1}))
    done = {}
    worker = threading.Thread(target=lambda: done.update(
        run=cbrun.train(path, runs_dir=tmp_path / "runs", quiet=True)))
    worker.start()
    worker.join(timeout=HANG_S)
    assert done["run"].status == "completed"
