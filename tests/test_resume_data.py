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


def _listing_before_0_2(folder) -> str:
    """The fingerprint cbrun recorded for a folder before it hashed contents: every file's
    path and size (written out here as that version did)."""
    import hashlib

    digest, count, total = hashlib.sha256(), 0, 0
    for item in sorted(p for p in folder.rglob("*") if p.is_file()):
        size = item.stat().st_size
        digest.update(f"{item.relative_to(folder).as_posix()}\0{size}\n".encode())
        count, total = count + 1, total + size
    return f"listing sha256 {digest.hexdigest()[:16]}, {count} files, {total} bytes"


def test_an_image_folder_is_fingerprinted_by_what_training_reads(tmp_path, capsys):
    """Files training skips (.DS_Store, macOS's ._ copies, notes) change nothing; an image
    rewritten at the same size, its modification time put back, is noticed; a run that
    recorded the older listing fingerprint resumes, compared as it was recorded."""
    import os

    from datafiles import damage_pixels

    shapes = write_images(tmp_path / "shapes", per_class=4)
    path = write_config(tmp_path, image_config("prints", {"path": "shapes",
                                                          "validation_split": 0.25}, epochs=1))
    assert cli("train", path, "--runs-dir", tmp_path / "runs", "-q") == 0
    run = only_run(tmp_path / "runs")
    saved = json.loads((run / "run.json").read_text())["data_files"]["path"]
    assert saved.startswith("content sha256 ") and saved.endswith(", 8 files, "
                                                                   f"{_bytes(shapes)} bytes")

    (shapes / ".DS_Store").write_bytes(b"\0" * 64)
    (shapes / "bar" / "._01.png").write_bytes(b"\0\5\26\7 resource fork")
    (shapes / "square" / "notes.txt").write_text("drawn by hand")
    assert cli_output(capsys, "resume", run, "--epochs", "2", "-q").code == 0

    image = shapes / "square" / "01.png"
    original, stat = image.read_bytes(), image.stat()
    damage_pixels(image, checksums="fixed")  # other pixels, the same size
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert image.stat().st_size == stat.st_size
    refused = cli_output(capsys, "resume", run, "--epochs", "3")
    assert refused.code == 2
    assert f"data.path (shapes): was {saved}, now content sha256 " in refused.err, refused.err
    image.write_bytes(original)

    record = json.loads((run / "run.json").read_text())
    record["data_files"]["path"] = _listing_before_0_2(shapes)
    (run / "run.json").write_text(json.dumps(record))
    assert cli_output(capsys, "resume", run, "--epochs", "3", "-q").code == 0
    assert len(read_log(run / "log.csv")) == 3
    (shapes / "square" / "extra.txt").write_text("one file more")
    refused = cli_output(capsys, "resume", run, "--epochs", "4")
    assert refused.code == 2 and "was listing sha256 " in refused.err, refused.err


def _bytes(folder) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
