"""What cbrun's own training pipelines cost beyond the floor (issue 28, the wide epoch
against Keras's bare train step): how many iterators of the training data an epoch makes
(given no steps_per_epoch, Keras makes one as each epoch begins and another, for nothing,
as it ends; cbrun gives fit the length of its own pipelines so that the one made at an
epoch's end serves the next), and whether AutoGraph converts any of their functions (it
parses the source of each and of what it calls: 0.2-0.4 s of a wide run's start). What a
run trains on stays the same: the resume tests (test_resume*.py, test_data_order.py,
test_long_runs.py) hold that."""

from __future__ import annotations

import tempfile

import pytest
from conftest import cli_output, only_run, read_log, tiny_config, write_config
from datafiles import table_config, table_rows, write_csv

EPOCHS = 3


@pytest.fixture
def iterators_made(monkeypatch):
    """{epoch iterator made inside `fit`: how many iterators of its data it made}, the
    training data's first (the baseline's and the adapt's evaluations come before fit)."""
    import keras
    from keras.src.backend.tensorflow.trainer import TFEpochIterator

    made: dict[int, int] = {}
    inside = []
    get, fit = TFEpochIterator._get_iterator, keras.Model.fit

    def counted(self):
        if inside:
            made[id(self)] = made.get(id(self), 0) + 1
        return get(self)

    def watched(self, *args, **kwargs):
        inside.append(True)
        try:
            return fit(self, *args, **kwargs)
        finally:
            inside.pop()

    monkeypatch.setattr(TFEpochIterator, "_get_iterator", counted)
    monkeypatch.setattr(keras.Model, "fit", watched)
    return made


@pytest.mark.parametrize("source", ["arrays", "table"])
def test_cbruns_own_pipelines_make_one_iterator_an_epoch_and_need_no_autograph(
        tmp_path, capsys, iterators_made, monkeypatch, source):
    if source == "arrays":
        config = tiny_config(fit={"epochs": EPOCHS},
                             callbacks=[{"type": "CSVLogger", "filename": "log.csv"}])
    else:  # a streamed table: its windows read as each epoch's first batch is asked for
        csv = write_csv(tmp_path / "table" / "part-00000.csv", table_rows(200))
        config = table_config("table", {
            "source": "csv", "path": str(csv.parent), "label": "species",
            "features": ["height_mm", "weight_g", "colour"], "validation_split": 0.2,
            "batch_size": 16, "stream": True, "shuffle_window": 64, "max_categories": 3},
            epochs=EPOCHS)
        config["callbacks"] = [{"type": "CSVLogger", "filename": "log.csv"}]
    path = write_config(tmp_path, config)
    # AutoGraph writes each function it converts as a file of the temporary folder.
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    result = cli_output(capsys, "train", path, "--runs-dir", tmp_path / "runs", "-q")
    assert result.code == 0, result.err
    assert len(read_log(only_run(tmp_path / "runs") / "log.csv")) == EPOCHS
    training = next(iter(iterators_made.values()))  # fit's training iterator comes first
    # One before the first epoch, one at each epoch's end (the last one's for nothing, as
    # Keras does); without the length given: two an epoch.
    assert training == EPOCHS + 1, iterators_made
    assert not list(scratch.glob("__autograph_generated_file*")), [
        p.read_text() for p in scratch.glob("__autograph_generated_file*")]
