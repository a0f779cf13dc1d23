"""Quick debug runs (issue 27): `--fast-dev-run` puts one batch of every split through the
model and every callback and keeps nothing; `--overfit-batches N` trains on the same N
batches until a working model fits them; `data.fraction` trains on a seeded share."""

from __future__ import annotations

import csv
import json
import re
import tempfile

import numpy as np
import pytest
from conftest import HANG_S, cbrun_process, cli, cli_output, only_run, tiny_config, write_config
from datafiles import image_config, write_images

EVERY_FILE_CALLBACK = [
    {"type": "CSVLogger", "filename": "log.csv"},
    {"type": "ModelCheckpoint", "filepath": "checkpoints/best.keras", "monitor": "val_loss",
     "save_best_only": True},
    {"type": "TensorBoard", "log_dir": "tensorboard"},
    {"type": "EarlyStopping", "monitor": "val_accuracy", "patience": 1},
]


@pytest.fixture
def own_tmp(tmp_path, monkeypatch):
    """The temporary folder of this test alone, to see what a run left in it."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_a_fast_dev_run_goes_through_every_callback_and_keeps_nothing(
        tmp_path, capsys, own_tmp):
    config = tiny_config(name="dev", fit={"epochs": 50, "steps_per_epoch": 40,
                                         "max_time": "2h"},
                         callbacks=EVERY_FILE_CALLBACK)
    config["data"]["test_split"] = 0.1
    result = cli_output(capsys, "train", write_config(tmp_path, config), "--fast-dev-run",
                        "--runs-dir", tmp_path / "runs")
    assert result.code == 0, result.err
    assert "epoch 1/1" in result.out and "val_loss" in result.out  # validated at epoch 1
    # One batch is the whole epoch, though the config asks for 40 steps.
    assert "1 batch per compiled call (the whole epoch)" in result.out, result.out
    assert "fast dev run passed" in result.out and "nothing was kept" in result.out
    # No summary of a folder that is gone, no verdict on one batch.
    assert "final model" not in result.out and "baseline" not in result.err
    assert not (tmp_path / "runs").exists()
    assert not list(own_tmp.glob("cbrun-*"))


def test_a_fast_dev_run_fails_on_what_only_training_finds(tmp_path, capsys, own_tmp):
    # Five output units for ten classes: validate cannot know the labels' range.
    config = tiny_config(name="too-few")
    config["model"]["layers"][-1]["units"] = 5
    path = write_config(tmp_path, config)
    assert cli("validate", path) == 0
    result = cli_output(capsys, "train", path, "--fast-dev-run", "--runs-dir",
                        tmp_path / "runs")
    assert result.code != 0
    assert "fast dev run passed" not in result.out
    assert not list(own_tmp.glob("cbrun-*"))


def test_a_fast_dev_run_refuses_what_a_real_run_refuses(tmp_path, capsys):
    """Its own settings (one epoch, no time limit) come after the user's: a wrong value
    among those it replaces is still an error, not a pass."""
    path = write_config(tmp_path, tiny_config())
    for wrong in ("fit.epochs=-5", "fit.max_time=abc", "fit.validation_steps=0"):
        result = cli_output(capsys, "train", path, "--fast-dev-run", "--set", wrong,
                            "--runs-dir", tmp_path / "runs")
        assert result.code == 2, (wrong, result.out, result.err)
        assert wrong.split("=")[0] in result.err and "passed" not in result.out, wrong


def test_a_fast_dev_run_command_leaves_its_temporary_folder_empty(tmp_path):
    """As a command of its own: the run's folder and TensorFlow's generated sources
    (deleted at interpreter exit, which a cbrun process skips) are gone."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    proc = cbrun_process("train", write_config(tmp_path, tiny_config()), "--fast-dev-run",
                         "-q", env={"TMPDIR": str(temp)})
    _out, err = proc.communicate(timeout=HANG_S)
    assert proc.returncode == 0, err[-3000:]
    assert not list(temp.iterdir())


def test_fast_dev_run_and_resume_if_exists_are_refused_together(tmp_path, capsys):
    result = cli_output(capsys, "train", write_config(tmp_path, tiny_config()),
                        "--fast-dev-run", "--resume-if-exists", "nightly")
    assert result.code == 2 and "--resume-if-exists" in result.err


def test_two_overfit_batches_are_learned_to_a_training_accuracy_of_one(tmp_path, capsys):
    config = tiny_config(name="overfit", fit={"epochs": 40},
                         callbacks=[{"type": "CSVLogger", "filename": "log.csv"}])
    del config["model"]["layers"][2]  # Dropout: training accuracy is measured through it
    result = cli_output(capsys, "train", write_config(tmp_path, config), "--overfit-batches",
                        "2", "--runs-dir", tmp_path / "runs")
    assert result.code == 0, result.err
    assert "the same first 2 batches (128 rows)" in " ".join(result.out.split())
    run = only_run(tmp_path / "runs")
    rows = list(csv.DictReader((run / "log.csv").open()))
    assert float(rows[-1]["accuracy"]) == 1.0
    # validated on the very batches it trained on (the run's validation split is 360 rows)
    assert float(rows[-1]["val_accuracy"]) == 1.0
    assert "overfit_batches: 2" in (run / "resolved.yaml").read_text()
    # Its perfect score is marked as a debug run's wherever runs are listed.
    listed = cli_output(capsys, "runs", tmp_path / "runs")
    line = next(line for line in listed.out.splitlines() if line.startswith(run.name))
    assert "completed (overfit 2)" in line
    assert "same N batches" in " ".join(listed.out.split())
    (row,) = json.loads(cli_output(capsys, "runs", tmp_path / "runs", "--json").out)
    assert row["overfit_batches"] == 2 and row["status"] == "completed"


def test_validation_steps_validates_on_the_first_batches_only(tmp_path, capsys):
    logs = {}
    for steps in (None, 1):
        config = tiny_config(name="val", fit={"epochs": 1, "validation_steps": steps},
                             callbacks=[{"type": "CSVLogger", "filename": "log.csv"}])
        runs = tmp_path / f"runs-{steps}"
        assert cli_output(capsys, "train", write_config(tmp_path, config), "--runs-dir",
                          runs).code == 0
        (logs[steps],) = list(csv.DictReader((only_run(runs) / "log.csv").open()))
    assert logs[None]["loss"] == logs[1]["loss"]  # the same training
    assert logs[None]["val_loss"] != logs[1]["val_loss"]  # 64 of the 360 validation rows


def test_overfit_batches_is_checked_up_front(tmp_path, capsys):
    result = cli_output(capsys, "train", write_config(tmp_path, tiny_config()),
                        "--overfit-batches", "0")
    assert result.code == 2 and "--overfit-batches" in result.err
    result = cli_output(capsys, "validate", write_config(tmp_path, tiny_config(
        fit={"epochs": 2, "overfit_batches": "2"})))
    assert result.code == 2 and "overfit_batches" in result.out


def test_a_fraction_keeps_a_seeded_share_of_every_split_with_every_class(tmp_path):
    from cbrun.config.data import DigitsData
    from cbrun.engine.sources import load_splits

    whole = load_splits(DigitsData(validation_split=0.2), tmp_path, seed=5)
    tenth = load_splits(DigitsData(validation_split=0.2, fraction=0.1), tmp_path, seed=5)
    again = load_splits(DigitsData(validation_split=0.2, fraction=0.1), tmp_path, seed=5)
    # Without held-out rows the split is the same for every seed: only the share differs.
    other = [load_splits(DigitsData(fraction=0.1), tmp_path, seed=seed) for seed in (5, 6)]
    assert len(tenth.train) == round(0.1 * len(whole.train))
    assert len(tenth.validation) == round(0.1 * len(whole.validation))
    np.testing.assert_array_equal(tenth.train.x, again.train.x)
    assert not np.array_equal(other[0].train.x, other[1].train.x)
    # every class keeps its share to within a row
    counts = np.bincount(tenth.train.y, minlength=10)
    expected = 0.1 * np.bincount(whole.train.y, minlength=10)
    assert np.all(np.abs(counts - expected) <= 1), (counts, expected)
    # the kept rows are rows of the split, in the split's order
    index = {row.tobytes(): i for i, row in enumerate(whole.train.x)}
    positions = [index[row.tobytes()] for row in tenth.train.x]
    assert positions == sorted(positions)
    assert tenth.artifacts["fraction.json"] == {
        "fraction": 0.1, "rows": {"train": len(tenth.train),
                                  "validation": len(tenth.validation)}}


def test_a_fraction_of_an_image_folder_trains_on_that_many_files(tmp_path, capsys):
    write_images(tmp_path / "shapes", per_class=20)
    config = image_config("part", {"path": "shapes", "validation_split": 0.25,
                                   "fraction": 0.5}, epochs=1)
    result = cli_output(capsys, "train", write_config(tmp_path, config), "--runs-dir",
                        tmp_path / "runs")
    assert result.code == 0, result.err
    assert "rows kept: train 15, validation 5" in result.out
    kept = json.loads((only_run(tmp_path / "runs") / "data" / "fraction.json").read_text())
    assert kept["rows"] == {"train": 15, "validation": 5}
    assert "fewer than one batch" not in result.err
    # 15 rows in batches of 32: said, since such a run says little about the model.
    result = cli_output(capsys, "train", write_config(tmp_path, config), "--runs-dir",
                        tmp_path / "runs2", "--set", "data.batch_size=32")
    assert result.code == 0, result.err
    assert ("warning: data: data.fraction 0.5 keeps 15 training rows, fewer than one batch "
            "of 32") in result.err


def test_a_fraction_that_draws_no_row_of_a_streamed_table_is_refused_before_training(
        tmp_path, capsys):
    # A streamed table's share is drawn row by row (a whole one keeps at least a row a
    # split): 1% of ~32 training rows draws none for this seed, which crashed inside Keras.
    with open(tmp_path / "t.csv", "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["a", "b", "y"])
        writer.writerows([[i / 40, (i * 7 % 40) / 40, i % 2] for i in range(40)])
    config = tiny_config(
        data={"source": "csv", "path": "t.csv", "label": "y", "validation_split": 0.2,
              "batch_size": 8, "stream": True, "fraction": 0.01},
        model={"input_shape": [2], "layers": [{"type": "Dense", "units": 2,
                                                "activation": "softmax"}]},
        fit={"epochs": 1})
    result = cli_output(capsys, "train", write_config(tmp_path, config), "--runs-dir",
                        tmp_path / "runs")
    assert result.code == 2, result.err
    # (a streamed table's held-out rows are drawn row by row too: about 32 train rows)
    assert re.search(r"data\.fraction: draws none of the \d\d train rows of this streamed "
                     r"table \(each row is kept with probability 0\.01\)", result.err)
    assert "stream: false" in result.err
    assert not list((tmp_path / "runs").glob("*/run.json"))  # nothing trained, nothing kept


@pytest.mark.parametrize("value", [0, 1.5, "half"])
def test_a_fraction_outside_0_to_1_is_refused_at_its_line(tmp_path, capsys, value):
    config = tiny_config()
    config["data"]["fraction"] = value
    result = cli_output(capsys, "validate", "--json", write_config(tmp_path, config))
    problems = json.loads(result.out)["files"][0]["problems"]
    assert [p["field"] for p in problems] == ["data.fraction"]
    assert problems[0]["line"] == 7
