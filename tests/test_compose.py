"""Configs made of several files (issue 27): `extends:`, several files on the command line,
`${...}` references and `--set`, with every mistake at the file and line that set it, a
run that resumes from its own directory alone, and `cbrun config show`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import HANG_S, cbrun_process, cli, cli_output, only_run

from cbrun.state.files import FAULT_AT_BATCH_ENV

BASE = """\
name: composed
seed: 7
model:
  input_shape: [64]
  layers:
    - {type: Rescaling, scale: 0.0625}
    - {type: Dense, units: 32, activation: relu}
    - {type: Dropout, rate: 0.3}
    - {type: Dense, units: 10, activation: softmax}
compile:
  optimizer: {type: Adam, learning_rate: 0.01}
  loss: sparse_categorical_crossentropy
  metrics: [accuracy]
  steps_per_execution: 1
fit:
  epochs: 9
callbacks:
  - {type: CSVLogger, filename: log.csv}
"""
DATA = """\
extends: base.yaml
data:
  source: digits
  validation_split: {split}
  batch_size: 32
"""
EXPERIMENT = """\
fit:
  epochs: {epochs}
  state_every: 5
callbacks:
  - {{type: CSVLogger, filename: log.csv}}
  - type: EarlyStopping
    monitor: val_loss
    patience: {patience}
"""


def write_files(folder: Path, split="0.2", epochs="2", patience="${fit.epochs}") -> list[Path]:
    """base.yaml <- data.yaml (extends it) and exp.yaml, merged on the command line."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "base.yaml").write_text(BASE)
    (folder / "data.yaml").write_text(DATA.format(split=split))
    (folder / "exp.yaml").write_text(EXPERIMENT.format(epochs=epochs, patience=patience))
    return [folder / "data.yaml", folder / "exp.yaml"]


def problems(capsys, files: list[Path], *sets: str) -> list[dict]:
    result = cli_output(capsys, "validate", "--merge", "--json", *files,
                        *[a for s in sets for a in ("--set", s)])
    doc = json.loads(result.out)
    assert result.code == 2 and not doc["ok"]
    return doc["files"][0]["problems"]


def test_each_mistake_is_reported_at_the_file_and_line_that_set_it(tmp_path, capsys):
    # A mistake in the middle file, a reference to a key that is not there in the last one.
    files = write_files(tmp_path, split="1.5", patience="${fit.epoch}")
    found = {(Path(p["file"]).name, p["line"]): p["message"] for p in problems(capsys, files)}
    assert set(found) == {("data.yaml", 4), ("exp.yaml", 8)}, found
    assert "fit.epochs" in found[("exp.yaml", 8)] or "epochs" in found[("exp.yaml", 8)]

    # A later file's value replaces an earlier one's, and answers for it: exp.yaml's line 2,
    # not base.yaml's line 16.
    files = write_files(tmp_path, epochs="0")
    found = {(Path(p["file"]).name, p["line"]) for p in problems(capsys, files)}
    assert ("exp.yaml", 2) in found and all(name != "base.yaml" for name, _ in found), found

    # --set stays last, and a reference sees the value it gave: the patience the reference
    # resolves to is the --set's -1, reported at the reference's line.
    files = write_files(tmp_path)
    found = problems(capsys, files, "fit.epochs=-1")
    where = {(Path(p["file"]).name, p.get("line")) for p in found}
    assert ("--set fit.epochs=-1", None) in where, found
    assert ("exp.yaml", 8) in where, found


def test_cbrun_config_show_prints_each_value_with_where_it_came_from(
        tmp_path, capsys, monkeypatch):
    write_files(tmp_path)
    monkeypatch.chdir(tmp_path)  # the files named as the user names them
    result = cli_output(capsys, "config", "show", "data.yaml", "exp.yaml",
                        "--set", "data.batch_size=16")
    assert result.code == 0, result.err
    lines = {line.split("#")[0].strip(): line.split("#")[-1].strip()
             for line in result.out.splitlines() if "#" in line and ":" in line}
    assert lines["batch_size: 16"] == "--set data.batch_size=16"
    assert lines["epochs: 2"] == "exp.yaml:2"  # exp.yaml's 2 over base.yaml's 9
    # the item whose patience is a reference, resolved
    assert lines["- {type: EarlyStopping, monitor: val_loss, patience: 2}"] == "exp.yaml:6"
    assert lines["source: digits"] == "data.yaml:3"
    assert lines["seed: 7"] == "base.yaml:2"
    assert result.out.splitlines()[0] == (
        "# cbrun config show: base.yaml, data.yaml, exp.yaml with --set data.batch_size=16")


def test_extends_in_a_circle_or_to_a_missing_file_is_named(tmp_path, capsys):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\nname: a\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    found = problems(capsys, [tmp_path / "a.yaml"])
    assert "circle" in found[0]["message"] and "a.yaml" in found[0]["message"]
    (tmp_path / "c.yaml").write_text("name: c\nextends: [base.yml]\n")
    (tmp_path / "base.yaml").write_text(BASE)
    found = problems(capsys, [tmp_path / "c.yaml"])
    assert (Path(found[0]["file"]).name, found[0]["line"]) == ("c.yaml", 2)
    assert "base.yaml" in found[0]["message"]  # did you mean


def test_a_composed_run_resumes_from_its_directory_alone_to_its_uninterrupted_twin(
        tmp_path, capsys):
    files = write_files(tmp_path / "configs", epochs="3")
    assert cli("train", *files, "--runs-dir", tmp_path / "whole", "-q") == 0
    whole = only_run(tmp_path / "whole")
    record = json.loads((whole / "run.json").read_text())
    assert [Path(f).name for f in record["config_files"]] == [
        "base.yaml", "data.yaml", "exp.yaml"]
    resolved = (whole / "resolved.yaml").read_text()
    assert resolved.index("base.yaml") < resolved.index("data.yaml") < resolved.index(
        "exp.yaml") < resolved.index("name: composed")

    proc = cbrun_process("train", *files, "--runs-dir", tmp_path / "killed", "-q",
                         env={FAULT_AT_BATCH_ENV: "1:20"})
    proc.communicate(timeout=HANG_S)
    assert proc.returncode != 0
    shutil.rmtree(tmp_path / "configs")  # resume needs only the run directory
    killed = only_run(tmp_path / "killed")
    assert cli("resume", killed, "-q") == 0
    assert (killed / "log.csv").read_bytes() == (whole / "log.csv").read_bytes()
    assert len((whole / "log.csv").read_text().splitlines()) == 4


@pytest.mark.parametrize("reference, message", [
    ("${fit}", "Input should be a valid integer"),
    ("${callbacks.1.patience}", "refers to itself"),
    ('"after ${fit} epochs"', "${fit} is a section, which cannot be written inside a text"),
])
def test_a_reference_to_a_section_or_to_itself_is_an_error_at_its_line(
        tmp_path, capsys, reference, message):
    files = write_files(tmp_path, patience=reference)
    found = problems(capsys, files)
    assert [(Path(p["file"]).name, p["line"]) for p in found] == [("exp.yaml", 8)], found
    assert message in found[0]["message"]


def test_a_mapping_two_files_set_is_blamed_at_a_line_of_the_later_one(tmp_path, capsys):
    """data.yaml sets data:, csv.yaml changes it to a CSV without a path: the problem with
    the mapping is at csv.yaml's line, not at data.yaml's line under csv.yaml's name."""
    files = write_files(tmp_path)
    (tmp_path / "csv.yaml").write_text("# a table now\n" * 5 + "data:\n  source: csv\n"
                                       "  label: y\n")
    found = problems(capsys, [*files, tmp_path / "csv.yaml"])
    (problem,) = [p for p in found if p["field"].startswith("data")]
    assert problem["file"].endswith("csv.yaml") and problem["line"] in (6, 7), problem
