"""`cbrun benchmark RUN`: a row per format on a real run (size, latency at batch 1 and at the
run's batch size, the validation metric), formats whose extra is missing named as skipped,
nothing left behind unless --keep. Speeds are measured, never asserted."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import REPO, cli, cli_output, only_run, tiny_config, write_config
from test_export import HIDE

from tests.helpers.light import run_cbrun

ROWS = ["keras", "saved_model", "litert", "litert-int8", "litert-float16", "onnx"]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("benchmark_digits")
    path = write_config(folder, tiny_config(fit={"epochs": 4}))
    assert cli("train", path, "--runs-dir", folder / "runs", "--quiet") == 0
    return only_run(folder / "runs")


def listing(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns
            for p in folder.rglob("*") if p.is_file()}


def test_every_format_is_a_row_of_the_table(digits_run, tmp_path, capsys, monkeypatch):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    before = listing(digits_run)
    result = cli_output(capsys, "benchmark", digits_run, "--repeats", "3")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert re.fullmatch(rf"{re.escape(str(digits_run))}: last: model.keras \(epoch 4\); 360 "
                        r"validation samples, batch 64; median of 3 calls after 3 untimed, on "
                        r"(CPU \(\d+ cores\)|\d+ GPUs?)", lines[0]), lines[0]
    assert lines[1].split() == ["format", "file", "size", "batch", "1", "batch", "64",
                                "accuracy"]
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert list(rows) == ROWS, result.out
    for name, cells in rows.items():
        # format, file, size KiB, ms, ms, accuracy (and beside each export's, its change
        # from the Keras model's): every cell measured
        assert len(cells) == (9 if name == "keras" else 11) and "-" not in cells, cells
        assert float(cells[2]) > 0 and 0 <= float(cells[8]) <= 1, cells
    assert rows["keras"][1] == str(digits_run / "model.keras")
    assert rows["litert-int8"][1] == "model-int8.tflite"
    # The float formats compute what Keras computes: the same accuracy on the same rows.
    assert {rows[n][8] for n in ("keras", "saved_model", "litert", "onnx")} == \
        {rows["keras"][8]}
    assert rows["onnx"][9:] == ["(+0.0", "pts)"]
    change = float(rows["litert-int8"][9].strip("(")) / 100
    assert abs(float(rows["keras"][8]) + change - float(rows["litert-int8"][8])) < 1e-3
    assert listing(digits_run) == before  # nothing written into the run
    # and the exports' folder is gone (TensorFlow's autograph leaves its .py files there)
    assert [p.name for p in scratch.iterdir() if not p.name.startswith("__autograph")] == []


def test_json_and_keep(digits_run, tmp_path, capsys):
    keep = tmp_path / "exports"
    result = cli_output(capsys, "benchmark", digits_run, "--formats", "keras,litert-int8,litert",
                        "--repeats", "2", "--keep", keep, "--json")
    assert result.code == 0, result.err
    found = json.loads(result.out)
    assert (found["split"], found["samples"], found["batch_size"], found["repeats"]) == (
        "validation", 360, 64, 2)
    rows = {row["format"]: row for row in found["rows"]}
    assert list(rows) == ["keras", "litert-int8", "litert"]
    for row in rows.values():
        assert row["bytes"] > 0 and row["ms_per_sample_batch_1"] > 0 and \
            row["ms_per_batch"] > 0 and row["skipped"] is None and row["error"] is None
        (metric,) = row["metrics"].values()
        assert metric["metric"] == "accuracy" and 0 <= metric["value"] <= 1
    assert rows["litert-int8"]["bytes"] < rows["litert"]["bytes"] / 2
    assert sorted(p.name for p in keep.iterdir()) == ["model-int8.tflite", "model.tflite"]
    assert rows["litert"]["path"] == str(keep / "model.tflite")
    assert (keep / "model.tflite").stat().st_size == rows["litert"]["bytes"]


def test_a_format_whose_extra_is_missing_is_named_as_skipped(digits_run, tmp_path):
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(HIDE.format(name="ai_edge_litert"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shim), str(REPO)])}
    command = subprocess.run([sys.executable, "-m", "cbrun", "benchmark", str(digits_run),
                              "--formats", "keras,litert,litert-int8,onnx", "--repeats", "1"],
                             capture_output=True, text=True, env=env, check=False)
    assert command.returncode == 0, command.stderr
    rows = {line.split()[0]: line.split() for line in command.stdout.splitlines()[2:6]}
    assert rows["litert"][1:] == ["-"] * 5 and rows["litert-int8"][1:] == ["-"] * 5
    assert "-" not in rows["keras"] and "-" not in rows["onnx"]
    for name in ("litert", "litert-int8"):
        assert (f"{name}: skipped, needs ai_edge_litert from the export extra (ai_edge_litert "
                f"not installed): pip install 'cbrun[export]'") in command.stdout


def test_mistakes_are_one_line_before_tensorflow(digits_run, tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    (full / "mine.txt").write_text("keep me")
    file = tmp_path / "file"
    file.write_text("x")
    result = run_cbrun(["benchmark", digits_run, "--formats", "keras,tflite"],
                       ["benchmark", digits_run, "--formats", ","],
                       ["benchmark", digits_run, "--keep", full],
                       ["benchmark", digits_run, "--keep", file],
                       ["benchmark", digits_run, "--keep", digits_run / "log.csv"],
                       ["benchmark", tmp_path],
                       ["benchmark", "--help"])
    assert result.codes == [2] * 6 + [0] and result.heavy == []
    errors = [c.err.strip() for c in result.commands]
    assert errors[0] == ("error: --formats: no format 'tflite' (did you mean 'litert'?); "
                         "choose from keras, saved_model, litert, litert-int8, "
                         "litert-float16, onnx")
    assert errors[1].startswith("error: --formats is empty")
    assert errors[2] == (f"error: --keep {full} is not empty; name a new or empty folder, so "
                         f"no file of yours is replaced")
    assert errors[3] == f"error: --keep {file} is a file; name a folder for the exports"
    assert "cbrun never writes over a run's own files" in errors[4]
    assert "is not a run directory" in errors[5]
    assert (full / "mine.txt").read_text() == "keep me"


def test_a_format_beyond_exports_bound_is_marked():
    """A float16 regression that lost its outputs (MAE 82,179 against Keras's 7,087, as a
    new user saw) is marked; one within the bound is not."""
    from cbrun.commands.benchmark import _against_keras

    assert _against_keras("mae", 82179.0, 7087.0, own=False) == (" (+1060%) !", True)
    assert _against_keras("mae", 7200.0, 7087.0, own=False) == (" (+2%)", False)
    assert _against_keras("accuracy", 0.9556, 0.9722, own=False) == (" (-1.7 pts) !", True)
    assert _against_keras("accuracy", 0.9722, 0.9667, own=False) == (" (+0.5 pts)", False)
    assert _against_keras("accuracy", 0.97, 0.97, own=True) == ("", False)
