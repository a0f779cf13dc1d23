"""Streamed tables: a folder of Parquet or CSV shards read a window at a time (`stream:
true` forces it on a table this small), resumed after a SIGKILL to the very log.csv of the
uninterrupted run, learning the same vocabularies and statistics as the table read whole,
and its broken shards named by `cbrun validate` before TensorFlow."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import HANG_S, cbrun_process, cli_output, only_run, write_config
from datafiles import table_config, table_rows

from tests.helpers.light import run_cbrun

SHARDS = 4
COLOURS = ["red", "red", "red", "green", "green", "blue", "amber", "teal"]  # skewed


def rows(n: int = 320) -> list[dict]:
    found = table_rows(n, seed=4)
    for i, row in enumerate(found):
        row["colour"] = COLOURS[(i * 7) % len(COLOURS)]
    return found


def write_shards(folder: Path, kind: str = "parquet", n: int = 320) -> Path:
    """SHARDS files of a Spark-like folder (part-0000N, a _SUCCESS marker), Parquet ones
    in row groups of 20 rows."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows(n))
    size = n // SHARDS
    for i in range(SHARDS):
        part = table.slice(i * size, size)
        if kind == "parquet":
            pq.write_table(part, folder / f"part-{i:05d}.parquet", row_group_size=20)
        else:
            pacsv.write_csv(part, folder / f"part-{i:05d}.csv")
    (folder / "_SUCCESS").write_text("")
    return folder


def stream_config(path: str, source: str = "parquet", epochs: int = 6, **data) -> dict:
    config = table_config("shards", {"source": source, "path": path, "label": "species",
                                     "features": ["height_mm", "weight_g", "colour"],
                                     "validation_split": 0.2, "test_split": 0.1,
                                     "batch_size": 16, "stream": True, "shuffle_window": 64,
                                     "max_categories": 3, **data}, epochs=epochs)
    # States inside epochs, for a kill to land between, and inside windows (of 4 batches).
    config["fit"]["state_every"] = 3
    return config


# ---------------------------------------------------------------- a kill, then resume

def _kill_mid_epoch(proc, runs: Path) -> list[str]:
    """SIGKILL once a state inside epoch 3 or later is on disk; the states left."""
    deadline = time.monotonic() + HANG_S
    while proc.poll() is None and time.monotonic() < deadline:
        if list(runs.glob("*/state/epoch-0000[2-9]-*")):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    proc.communicate(timeout=HANG_S)
    return sorted(p.name for p in (only_run(runs) / "state").iterdir())


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    root = tmp_path_factory.mktemp("stream")
    write_shards(root / "shards")
    config = write_config(root, stream_config("shards"))
    base = cbrun_process("train", config, "--runs-dir", root / "baseline")
    proc = cbrun_process("train", config, "--runs-dir", root / "killed", "-q")
    states = _kill_mid_epoch(proc, root / "killed")
    resumed = cbrun_process("resume", only_run(root / "killed"))
    out = {"baseline": base.communicate(timeout=HANG_S), "resume": resumed.communicate(
        timeout=HANG_S)}
    return {"root": root, "states": states, "killed": proc.returncode,
            "codes": {"baseline": base.returncode, "resume": resumed.returncode}, "out": out}


def test_a_shard_folder_streams_and_its_first_lines_say_so(killed):
    assert killed["codes"]["baseline"] == 0, killed["out"]["baseline"]
    out = " ".join(killed["out"]["baseline"][0].split())
    assert "data: shards (4 files) streamed (320 rows" in out
    assert "stream: true" in out and "window of 64" in out
    assert "the 3 most frequent of its 5 values kept (max_categories)" in out


def test_a_sigkilled_streamed_run_resumes_to_the_same_log_byte_for_byte(killed):
    assert killed["killed"] == -signal.SIGKILL
    # Killed inside an epoch: the newest state, which the resume starts from, is one saved
    # between batches, inside a window.
    assert killed["states"][-1].count("-") == 2, killed["states"]
    assert killed["codes"]["resume"] == 0, killed["out"]["resume"]
    base = only_run(killed["root"] / "baseline")
    resumed = only_run(killed["root"] / "killed")
    assert (base / "log.csv").read_bytes() == (resumed / "log.csv").read_bytes()
    record = json.loads((resumed / "run.json").read_text())
    assert [s["kind"] for s in record["segments"]] == ["train", "resume"]
    # The resume reads the table as the run began, and what it learned from data/.
    said = " ".join(killed["out"]["resume"][0].split())
    assert "streamed (" in said and "as the run started" in said
    for name in ("table.json", "stats.json", "stream.json"):
        assert (base / "data" / name).read_bytes() == (resumed / "data" / name).read_bytes()


# ---------------------------------------------------------------- the same as in memory

def _load(folder: Path, config: dict, **data):
    from cbrun.config.load import load_config
    from cbrun.engine.sources import load_splits

    path = write_config(folder, {**config, "data": {**config["data"], **data}}, "probe.yaml")
    loaded = load_config(path)
    return load_splits(loaded.config.data, folder, seed=loaded.config.seed)


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    root = tmp_path_factory.mktemp("same")
    write_shards(root / "pq")
    write_shards(root / "csv", "csv")
    for i, part in enumerate(sorted((root / "pq").glob("*.parquet"))):  # hive-style
        (root / "hive" / f"day={i}").mkdir(parents=True)
        (root / "hive" / f"day={i}" / "part-0.parquet").write_bytes(part.read_bytes())
    return root


def test_streamed_and_in_memory_paths_learn_and_hold_the_same(tables):
    # The same training rows (none held out: a stream draws its held-out rows row by row,
    # the table in memory exactly; tests/test_stream_bounded.py checks the stream's).
    fraction, whole_rows = 1.0, {"validation_split": 0, "test_split": 0}
    whole = _load(tables, stream_config("pq", **whole_rows), stream=False)
    for source, folder in (("parquet", "pq"), ("csv", "csv"), ("parquet", "hive")):
        streamed = _load(tables, stream_config(folder, source, **whole_rows))
        assert streamed.train.table is not None and whole.train.table is None
        for name in ("table.json", "stats.json"):
            assert streamed.artifacts.get(name) == whole.artifacts.get(name), (source, name)
        for split in ("train",):
            mine, theirs = getattr(streamed, split), getattr(whole, split)
            assert np.array_equal(mine.y, theirs.y), (source, split)
            assert np.array_equal(mine.x[:], theirs.x), (source, split)
    auto = _load(tables, stream_config("pq"), stream="auto")  # a small table: whole
    assert auto.train.table is None and "read into memory" in auto.notes[0]
    assert "stream: auto streams over" in auto.notes[0]
    vocabulary = whole.artifacts["table.json"]["vocabularies"]["colour"]
    assert vocabulary == ["green", "red", "teal"]  # the 3 most frequent, sorted; 0: the rest
    if fraction == 1.0:  # learned from every training row, whatever share trains
        column = whole.train.x[:, 0].astype(np.float64)
        stats = whole.artifacts["stats.json"]["numbers"]["height_mm"]
        assert stats["mean"] == pytest.approx(column.mean(), rel=1e-6)
        assert stats["variance"] == pytest.approx(column.var(), rel=1e-5)


def test_a_streamed_epoch_is_a_pure_function_of_seed_and_epoch():
    from cbrun.data.order import epoch_rows

    counts = np.array([20, 0, 7, 20, 13])
    first = epoch_rows(counts, 16, 3, 2, True)
    assert np.array_equal(first, epoch_rows(counts, 16, 3, 2, True))
    assert sorted(first.tolist()) == list(range(60))
    assert not np.array_equal(first, epoch_rows(counts, 16, 3, 3, True))
    # Entering at a batch gives the rest of the same order (a resume inside the epoch).
    assert np.array_equal(epoch_rows(counts, 16, 3, 2, True, start_row=32), first[32:])
    assert np.array_equal(epoch_rows(counts, 16, 3, 2, False), np.arange(60))


# ---------------------------------------------------------------- broken shards

def _break(folder: Path, how: str) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if how == "csv":
        (folder / "part-00001.csv").write_text("height_mm,weight_g\n1,2\n")
        return "part-00001.csv has no column"
    if how == "stranger":
        (folder / "notes.txt").write_text("not a table")
        return "holds shards/notes.txt, which is not"
    victim = folder / "part-00002.parquet"
    table = pq.read_table(victim)
    if how == "schema":
        words = pa.array([str(v) for v in table.column("weight_g").to_pylist()])
        pq.write_table(table.set_column(1, "weight_g", words), victim)
        return "part-00002.parquet holds column 'weight_g' as text"
    if how == "missing":
        pq.write_table(table.drop(["weight_g"]), victim)
        return "part-00002.parquet has no column 'weight_g'"
    victim.write_bytes(victim.read_bytes()[:200])  # damaged: its footer cut off
    return "part-00002.parquet is not a readable parquet table"


@pytest.mark.parametrize("how", ["schema", "missing", "damaged", "stranger"])
def test_a_broken_shard_is_named_by_validate_before_tensorflow(tmp_path, how):
    write_shards(tmp_path / "shards")
    expected = _break(tmp_path / "shards", how)
    path = write_config(tmp_path, stream_config("shards"))
    result = run_cbrun(["validate", path])
    assert result.codes == [2] and result.heavy == []
    said = " ".join(result.commands[0].out.split())
    assert "data.path:" in said and expected in said, said


def test_a_csv_shard_without_a_column_is_named(tmp_path, capsys):
    write_shards(tmp_path / "shards", "csv")
    expected = _break(tmp_path / "shards", "csv")
    path = write_config(tmp_path, stream_config("shards", "csv"))
    code, out, err = cli_output(capsys, "validate", path)
    assert code == 2 and expected in " ".join((out + err).split())


def test_a_page_damaged_past_the_footer_stops_the_run_before_training(tmp_path, capsys):
    write_shards(tmp_path / "shards")
    victim = tmp_path / "shards" / "part-00001.parquet"
    data = bytearray(victim.read_bytes())
    data[4:400] = b"\xff" * 396  # the first pages; the footer still reads
    victim.write_bytes(bytes(data))
    path = write_config(tmp_path, stream_config("shards", epochs=1))
    code, out, err = cli_output(capsys, "train", path, "--runs-dir", tmp_path / "runs", "-q")
    said = " ".join((out + err).split())
    assert code == 2 and "part-00001.parquet is not a readable parquet table" in said
    assert not list((tmp_path / "runs").glob("*/log.csv"))


def test_a_streamed_csv_missing_value_is_named_by_file_and_line_before_training(tmp_path,
                                                                               capsys):
    write_shards(tmp_path / "shards", "csv")
    victim = tmp_path / "shards" / "part-00002.csv"
    lines = victim.read_text().splitlines()
    fields = lines[5].split(",")
    fields[1] = ""
    lines[5] = ",".join(fields)
    victim.write_text("\n".join(lines) + "\n")
    path = write_config(tmp_path, stream_config("shards", "csv", epochs=1))
    code, out, err = cli_output(capsys, "train", path, "--runs-dir", tmp_path / "runs", "-q")
    said = " ".join((out + err).split())
    assert code == 2, said
    assert "column 'weight_g' of shards/part-00002.csv has missing values (line 6)" in said
    assert not [p for p in (tmp_path / "runs").glob("*") if p.is_dir()]


def test_stream_is_a_config_key_checked_before_tensorflow(tmp_path):
    write_shards(tmp_path / "shards")
    config = stream_config("shards")
    config["data"]["stream"] = "sometimes"
    path = write_config(tmp_path, config)
    result = run_cbrun(["validate", path])
    assert result.codes == [2] and result.heavy == []
    assert "data.stream" in result.commands[0].out
    assert yaml.safe_load(path.read_text())["data"]["stream"] == "sometimes"


# ---------------------------------------------------------------- init on a shard folder

def test_init_on_a_shard_folder_reads_a_sample_and_the_label_and_says_so(tmp_path, capsys,
                                                                        monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    import cbrun.commands.init.tables as init_tables

    last = write_shards(tmp_path / "shards") / "part-00003.parquet"
    table = pq.read_table(last)
    species = table.column("species").to_pylist()[:-10] + ["owl"] * 10  # past the sample
    colour = table.column("colour").to_pylist()[:-10] + ["violet"] * 10
    table = table.set_column(3, "species", pa.array(species))
    pq.write_table(table.set_column(2, "colour", pa.array(colour)), last, row_group_size=20)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(init_tables, "SAMPLE_ROWS", 8)  # part of a row group: not every class
    code, out, _ = cli_output(capsys, "init", "shards", "--label", "species")
    said = " ".join(out.split())
    assert code == 0, out
    assert "a parquet table of 4 files" in said
    assert "read the schemas and footers of 4 files" in said
    assert "a sample of 8 of 320 rows (whole row groups drawn at random)" in said
    assert "the label and text columns whole" in said
    # The classes and a category's values come from one pass over those columns whole,
    # not from the sample.
    written = (tmp_path / "shards.yaml").read_text()
    assert "label: species   # the target: 4 classes (cat, dog, fox, owl)" in written
    assert "# colour: 6 values, a column each (one-hot)" in written
    code, out, _ = cli_output(capsys, "train", "shards.yaml", "--set", "fit.epochs=1",
                              "--set", "data.stream=true", "--runs-dir", "runs")
    assert code == 0 and "streamed" in out


def test_data_check_takes_a_shard_folder_and_says_what_it_read(tmp_path):
    write_shards(tmp_path / "shards")
    result = run_cbrun(["data", "check", tmp_path / "shards", "--label", "species"])
    assert result.codes == [0] and result.heavy == []
    out = result.commands[0].out
    assert "rows: train 320" in out and "read: every row of 4 files (" in out


def test_a_parquet_shards_missing_value_is_named_by_file_and_row_at_validate(tmp_path,
                                                                            capsys):
    """Found by the row groups' statistics, before TensorFlow: the file and its row."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    write_shards(tmp_path / "shards")
    part = tmp_path / "shards" / "part-00001.parquet"
    table = pq.read_table(part).to_pylist()
    table[24]["weight_g"] = None  # the 25th row: the second row group's fifth
    pq.write_table(pa.Table.from_pylist(table), part, row_group_size=20)
    result = cli_output(capsys, "validate", write_config(tmp_path, stream_config("shards")))
    assert result.code == 2
    assert ("column 'weight_g' of shards/part-00001.parquet has missing values (row 25 of "
            "the file)") in result.out, result.out
