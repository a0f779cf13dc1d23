"""A resume trains on the data the run started on: a data file or image folder changed in
between is named, and the resume refused before anything is written."""

from __future__ import annotations

import json

import pytest
from conftest import cli, cli_output, only_run, read_log, write_config
from datafiles import image_config, table_config, table_rows, write_csv, write_images


@pytest.mark.parametrize("kind", ["csv", "images"])
def test_a_resume_on_changed_data_is_refused_and_on_the_original_goes_on(tmp_path, capsys,
                                                                         kind):
    if kind == "csv":
        write_csv(tmp_path / "animals.csv", table_rows(60))
        config = table_config("grown", {"source": "csv", "path": "animals.csv",
                                        "label": "species", "validation_split": 0.2},
                              epochs=2)
        original = (tmp_path / "animals.csv").read_bytes()

        def change():
            write_csv(tmp_path / "animals.csv", table_rows(90))

        def restore():
            (tmp_path / "animals.csv").write_bytes(original)
    else:
        write_images(tmp_path / "shapes", per_class=4)
        config = image_config("shrunk", {"path": "shapes", "validation_split": 0.25},
                              epochs=2)
        moved = tmp_path / "aside.png"

        def change():
            (tmp_path / "shapes" / "bar" / "01.png").rename(moved)

        def restore():
            moved.rename(tmp_path / "shapes" / "bar" / "01.png")
    path = write_config(tmp_path, config)
    assert cli("train", path, "--runs-dir", tmp_path / "runs", "-q") == 0
    run = only_run(tmp_path / "runs")
    saved = json.loads((run / "run.json").read_text())["data_files"]
    assert list(saved) == ["path"]
    before = (run / "log.csv").read_bytes()

    change()
    result = cli_output(capsys, "resume", run, "--epochs", "3")
    assert result.code == 2
    assert "the data changed since the run started (data.path" in result.err
    assert "Put the original back, or start a new run" in result.err
    assert (run / "log.csv").read_bytes() == before  # refused before writing anything

    restore()
    assert cli("resume", run, "--epochs", "3", "-q") == 0
    assert len(read_log(run / "log.csv")) == 3
