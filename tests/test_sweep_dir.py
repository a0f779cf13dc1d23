"""A sweep directory's own files and its storage, before any trial: a damaged sweep.json
and a storage that cannot be opened are one line each, and nothing of them is kept."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from conftest import cli_output, tiny_config, write_config

SWEEP = """\
name: x
base: base.yaml
space: {compile.optimizer.learning_rate: {type: choice, values: [0.01]}}
trials: 1
"""


@pytest.fixture
def sweep_file(tmp_path) -> Path:
    write_config(tmp_path, tiny_config(), "base.yaml")
    path = tmp_path / "sweep.yaml"
    path.write_text(SWEEP)
    return path


def one_line_error(capsys, *args) -> str:
    result = cli_output(capsys, *args)
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert (result.code, len(lines)) == (2, 1), result
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.parametrize("content", [b"[]", b"{}", b"null", b"\xff\xfe{}", b'{"name": "x"',
                                     b'{"id": 3, "name": "x"}', b"7"],
                         ids=["list", "empty", "null", "bytes", "cut", "id-number", "number"])
def test_a_damaged_sweep_json_is_one_line_naming_it_and_what_to_do(sweep_file, capsys,
                                                                   content):
    runs = sweep_file.parent / "runs"
    sweep_dir = runs / "sweeps" / "x"
    sweep_dir.mkdir(parents=True)
    (sweep_dir / "sweep.yaml").write_text(SWEEP)
    (sweep_dir / "sweep.json").write_bytes(content)
    for args in (["sweep", "--resume", sweep_dir], ["sweep", "show", sweep_dir],
                 ["sweep", sweep_file, "--runs-dir", runs]):
        line = one_line_error(capsys, *args)
        assert f"{sweep_dir / 'sweep.json'} is damaged" in line, line
        assert "restore it, or start the sweep anew under another `name`" in line
    assert (sweep_dir / "sweep.json").read_bytes() == content
    assert sorted(p.name for p in sweep_dir.iterdir()) == ["sweep.json", "sweep.yaml"]


def incompatible_sqlite(folder: Path) -> str:
    """A SQLite file whose tables an Optuna of another schema made."""
    path = folder / "old.db"
    with sqlite3.connect(path) as db:
        db.execute("create table alembic_version (version_num text)")
        db.execute("insert into alembic_version values ('v0.9.0.a')")
    return f"sqlite:///{path}"


@pytest.mark.parametrize("storage, says", [
    ("notaurl", "cannot open the study storage notaurl"),
    ("sqlite://", "is held in memory"),
    ("sqlite:///:memory:", "is held in memory"),
    ("sqlite:///{tmp}/no/such/folder/x.db", "unable to open database file"),
    ("postgresql://u:secret@db.example:99999/x", "cannot open the study storage"),
    ("postgresql://u:secret@[::1/x", "cannot open the study storage"),
    ("postgresql://u:secret@127.0.0.1:1/x", "cannot open the study storage"),
    ("incompatible", "no longer compatible with the table schema"),
    ("nosuchdb://x", "cannot open the study storage nosuchdb://x"),
])
def test_a_storage_that_fails_to_open_is_one_line_and_is_not_kept(sweep_file, capsys,
                                                                  storage, says):
    tmp = sweep_file.parent
    url = incompatible_sqlite(tmp) if storage == "incompatible" else storage.format(tmp=tmp)
    runs = tmp / "runs"
    line = one_line_error(capsys, "sweep", sweep_file, "--storage", url, "--runs-dir", runs)
    assert says in line, line
    assert "secret" not in line
    # Nothing was kept: the next run does not find the refused URL.
    assert not (runs / "sweeps" / "x" / "sweep.json").exists()
    line = one_line_error(capsys, "sweep", "--resume", runs / "sweeps" / "x")
    assert "is not a sweep directory (no sweep.json)" in line


def test_a_sweep_json_of_an_older_cbrun_without_an_id_is_refused(sweep_file, capsys):
    sweep_dir = sweep_file.parent / "runs" / "sweeps" / "x"
    sweep_dir.mkdir(parents=True)
    (sweep_dir / "sweep.yaml").write_text(SWEEP)
    (sweep_dir / "sweep.json").write_text(json.dumps({
        "name": "x", "base": str(sweep_file.parent / "base.yaml"), "storage": "s",
        "sweep_sha256": "0", "base_sha256": "0"}))
    line = one_line_error(capsys, "sweep", "show", sweep_dir)
    assert "was written by an older cbrun, before a sweep directory was bound" in line
    assert "start the sweep again under another `name`" in line
