"""Shared test helpers: tiny real configs, in-process CLI calls, one real finished run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
HELPERS = Path(__file__).parent / "helpers"

# A ceiling on waiting for a process, a file or a server, in seconds: only a hang takes this
# long, however loaded the machine (a test never measures speed with it).
HANG_S = 1200

# TensorFlow's C++ logging is noise in test output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


BASE_YAML = """\
name: t
data: {source: digits, validation_split: 0.2}
model:
  input_shape: [64]
  layers:
    - {type: Dense, units: 10, activation: softmax}
compile:
  optimizer: {type: Adam, learning_rate: 0.001}
  loss: sparse_categorical_crossentropy
  metrics: [accuracy]
fit:
  epochs: 2
"""  # a digits config as YAML text, for tests whose subject is the text itself


def tiny_config(**overrides) -> dict:
    """A digits MLP that trains in well under a second per epoch."""
    config = {
        "name": "tiny",
        "seed": 7,
        "data": {"source": "digits", "validation_split": 0.2, "batch_size": 64},
        "model": {"input_shape": [64], "layers": [
            {"type": "Rescaling", "scale": 0.0625},
            {"type": "Dense", "units": 32, "activation": "relu"},
            {"type": "Dropout", "rate": 0.3},
            {"type": "Dense", "units": 10, "activation": "softmax"},
        ]},
        "compile": {"optimizer": {"type": "Adam", "learning_rate": 0.01},
                    "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
        "fit": {"epochs": 4},
        "callbacks": [],
    }
    config.update(overrides)
    return config


def write_config(folder: Path, config: dict, name: str = "run.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def cli(*args: str) -> int:
    """Run `cbrun ARGS` in this process; returns the exit code. Its output goes where the
    test captures it (capsys); `cli_output` returns it."""
    from cbrun.cli import main

    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


class CliResult(NamedTuple):
    code: int
    out: str
    err: str


def cli_output(capsys, *args: str, traceback: bool = False) -> CliResult:
    """`cli`, returning (exit code, stdout, stderr) of this call alone. A traceback in the
    output fails the test unless `traceback` says one is expected (--debug)."""
    capsys.readouterr()
    code = cli(*args)
    out, err = capsys.readouterr()
    if not traceback:
        assert "Traceback" not in out + err, out + err
    return CliResult(code, out, err)


def cbrun_process(*args: str, env: dict | None = None, **kwargs) -> subprocess.Popen:
    """`python -m cbrun ARGS` in a new process (for signals and kills)."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "cbrun", *map(str, args)], env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kwargs)


def jax_cache(root) -> dict[str, str]:
    """JAX's compilation cache, shared by the runs of a test module: the same model compiles
    once (about 15 s on a CPU), not once in every process of every run. It holds the
    compiled programs, so the runs' numbers are what they would be without it."""
    return {"JAX_COMPILATION_CACHE_DIR": str(root / "jax-cache"),
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
            "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}


def only_run(runs_dir: Path) -> Path:
    found = [p for p in runs_dir.iterdir() if p.is_dir()]
    assert len(found) == 1, found
    return found[0]


FULL_CALLBACKS = [
    {"type": "EarlyStopping", "monitor": "val_loss", "patience": 1, "min_delta": 0.03,
     "restore_best_weights": True},
    {"type": "ModelCheckpoint", "filepath": "checkpoints/ep{epoch:03d}-val_loss{val_loss:.4f}.keras",
     "monitor": "val_loss", "save_best_only": True},
    {"type": "CSVLogger", "filename": "log.csv"},
    {"type": "TensorBoard", "log_dir": "tensorboard", "histogram_freq": 1},
    {"type": "ReduceLROnPlateau", "monitor": "val_loss", "factor": 0.5, "patience": 0,
     "min_delta": 0.02},
]


@pytest.fixture(scope="session")
def real_run(tmp_path_factory) -> Path:
    """A finished digits run with every DESIGN callback, trained once per test worker."""
    folder = tmp_path_factory.mktemp("real_run")
    path = write_config(folder, tiny_config(name="real", fit={"epochs": 10},
                                            callbacks=FULL_CALLBACKS))
    code = cli("train", path, "--runs-dir", folder / "runs", "--quiet")
    assert code == 0
    return only_run(folder / "runs")


def tb_scalars(log_dir: Path) -> dict[tuple[str, str], list[tuple[int, float]]]:
    """Every scalar in a TensorBoard log dir, read back with tensorboard's own event reader:
    {(subdir, tag): [(step, value), ...]} in file order (duplicates kept, to be checked)."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util import tensor_util

    found: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for path in sorted(log_dir.rglob("events.out.tfevents.*")):
        subdir = path.parent.relative_to(log_dir).as_posix()
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name != "scalars":
                    continue
                number = float(tensor_util.make_ndarray(value.tensor))
                found.setdefault((subdir, value.tag), []).append((event.step, number))
    return found


def read_log(path: Path) -> list[dict[str, str]]:
    import csv

    with path.open() as handle:
        return list(csv.DictReader(handle))


FAKE_RUN = Path(__file__).parent / "data" / "plot" / "digits"


def fake_run(root: Path, run_id: str, csv: bool | str = True, **run_json) -> Path:
    """A run directory like `cbrun train` leaves, without training: a real digits log.csv
    (or the text `csv`, or none when csv is False) and its run.json, with keys replaced by
    `run_json` (None removes a key)."""
    import json
    import shutil

    run_dir = root / run_id
    run_dir.mkdir(parents=True)
    if csv is True:
        shutil.copy(FAKE_RUN / "log.csv", run_dir / "log.csv")
    elif csv is not False:
        (run_dir / "log.csv").write_text(csv)  # "" is an empty log.csv
    data = json.loads((FAKE_RUN / "run.json").read_text())
    data["id"] = run_id
    for key, value in run_json.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    (run_dir / "run.json").write_text(json.dumps(data, indent=2))
    return run_dir
