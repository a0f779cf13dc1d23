"""The CSV log reader: Keras's format, other separators, gaps, and files that are not logs."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import pytest
from conftest import FAKE_RUN
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cbrun.errors import UsageError
from cbrun.run.logs import (
    Family,
    LogError,
    NoRowsError,
    NotALogError,
    best_epoch,
    default_monitor,
    infer_mode,
    metric_families,
    read_log,
    sniff_delimiter,
)


def write(tmp_path: Path, text: str, name: str = "log.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_a_real_keras_log_with_one_based_epochs():
    log = read_log(FAKE_RUN / "log.csv")
    assert log.epochs == tuple(range(1, 18))
    assert log.columns == ("accuracy", "learning_rate", "loss", "val_accuracy", "val_loss")
    assert log.has_epoch_column
    assert log.value_at("val_loss", 13) == pytest.approx(0.3615227937698364)
    assert log.values["learning_rate"][-1] == pytest.approx(0.00015625)


def test_a_run_directory_means_its_log_csv():
    assert read_log(FAKE_RUN).path == FAKE_RUN / "log.csv"


def test_families_pair_metrics_with_their_val_twin_and_put_the_lr_last():
    assert read_log(FAKE_RUN).families() == [
        Family("loss", ("loss", "val_loss")),
        Family("accuracy", ("accuracy", "val_accuracy")),
        Family("learning_rate", ("learning_rate",), log_scale=True),
    ]


def test_families_keep_a_lone_val_column_and_an_lr_named_lr():
    families = metric_families(["lr", "val_auc", "mae", "loss"])
    assert [(f.name, f.columns, f.log_scale) for f in families] == [
        ("loss", ("loss",), False),
        ("val_auc", ("val_auc",), False),
        ("mae", ("mae",), False),
        ("lr", ("lr",), True),
    ]


@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_other_separators_are_sniffed(tmp_path, sep):
    text = sep.join(["epoch", "loss", "val_loss"]) + "\n"
    text += sep.join(["0", "0.9", "1.1"]) + "\n" + sep.join(["1", "0.5", "0.7"]) + "\n"
    log = read_log(write(tmp_path, text))
    assert log.columns == ("loss", "val_loss")
    assert log.values["val_loss"] == (1.1, 0.7)


def test_decimal_commas_with_a_semicolon_separator(tmp_path):
    log = read_log(write(tmp_path, "epoch;loss\n0;0,75\n1;0,5\n"))
    assert log.values["loss"] == (0.75, 0.5)


def test_missing_and_non_finite_cells_become_nan(tmp_path):
    text = "epoch,loss,val_loss\n0,NA,1.0\n1,nan,inf\n2,,-inf\n3,0.4,0.6\n"
    log = read_log(write(tmp_path, text))
    loss, val = log.values["loss"], log.values["val_loss"]
    assert [math.isnan(v) for v in loss] == [True, True, True, False]
    assert [math.isnan(v) for v in val] == [False, True, True, False]


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "is empty"),
        ("\n  \n", "is empty"),
        ("epoch,loss,val_loss\n", "header but no rows"),
        ("name,comment\nfoo,bar\nbaz,qux\n", "no numeric column"),
        ("epoch,loss\nfirst,0.3\nsecond,0.2\n", "holds no epoch numbers"),
    ],
)
def test_logs_with_nothing_to_draw_say_why(tmp_path, text, message):
    with pytest.raises(LogError, match=message):
        read_log(write(tmp_path, text))


def test_a_missing_file_is_a_usage_error_with_a_suggestion(tmp_path):
    write(tmp_path, "epoch,loss\n0,1\n")
    with pytest.raises(UsageError, match=r"no such file.*did you mean .*log\.csv"):
        read_log(tmp_path / "log.cvs")


def test_a_directory_without_log_csv_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="has no log.csv"):
        read_log(tmp_path)


def test_a_run_directory_without_its_log_has_no_rows_yet(tmp_path):
    (tmp_path / "run.json").write_text("{}")
    with pytest.raises(NoRowsError, match="has no log.csv: no epoch has been logged"):
        read_log(tmp_path)


@pytest.mark.parametrize(
    "name, content, reason",
    [
        ("curves.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "an image, .png"),
        ("arrays.npz", b"PK\x03\x04\x14\x00\x00\x00", "a NumPy array file, .npz"),
        ("model.keras", b"PK\x03\x04", "a model or weights file, .keras"),
        ("run.json", b'{"epoch": 1}', "a structured text file, .json"),
        # The suffix lies; the bytes do not.
        ("log.csv", b"PK\x03\x04\x14\x00\x00\x00epoch,loss", "binary content"),
    ],
)
def test_files_that_are_no_csv_are_refused_not_read_as_text(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(NotALogError) as error:
        read_log(path)
    assert error.value.reason == reason
    assert str(error.value) == (f"{path} is not a CSV log ({reason}): name a log.csv or a run "
                                "directory")


def test_a_trailing_separator_adds_no_column(tmp_path):
    log = read_log(write(tmp_path, "epoch,loss,val_loss,\n0,0.9,1.0,\n1,0.7,0.8,\n"))
    assert log.columns == ("loss", "val_loss")
    assert [f.name for f in log.families()] == ["loss"]


def test_a_repeated_epoch_column_is_no_metric(tmp_path):
    log = read_log(write(tmp_path, "epoch,loss,epoch\n0,0.9,0\n1,0.7,1\n"))
    assert log.columns == ("loss",)
    assert log.skipped == ("epoch",)
    assert log.epochs == (1, 2)


def test_a_repeated_metric_name_is_drawn_once(tmp_path):
    log = read_log(write(tmp_path, "epoch,loss,loss\n0,0.9,5\n1,0.7,6\n"))
    assert log.columns == ("loss",) and log.values["loss"] == (0.9, 0.7)


def test_a_step_column_is_the_x_axis_and_an_epoch_beside_it_wins(tmp_path):
    log = read_log(write(tmp_path, "loss,step\n0.9,100\n0.7,200\n0.6,300\n"))
    assert (log.x_name, log.epochs, log.columns) == ("step", (100, 200, 300), ("loss",))
    assert not log.has_epoch_column
    both = read_log(write(tmp_path, "step,epoch,loss\n100,0,0.9\n200,1,0.7\n", "b.csv"))
    assert (both.x_name, both.epochs, both.columns) == ("epoch", (1, 2), ("loss",))
    assert both.skipped == ("step",)  # a counter, not a metric


def test_without_an_epoch_column_rows_are_numbered(tmp_path):
    log = read_log(write(tmp_path, "loss,accuracy\n0.9,0.5\n0.6,0.7\n0.4,0.8\n"))
    assert not log.has_epoch_column
    assert (log.x_name, log.epochs) == ("row", (1, 2, 3))


def test_a_foreign_csv_keeps_its_numeric_columns_and_names_the_others(tmp_path):
    text = (
        "step,time,loss,comment,gpu\n"
        "0,2026-01-01T10:00,1.5,warmup,0.9\n"
        "1,2026-01-01T10:01,1.1,,0.8\n"
        "2,2026-01-01T10:02,0.9,ok,oops\n"
    )
    log = read_log(write(tmp_path, text, "history.csv"))
    assert log.columns == ("loss", "gpu")
    assert log.skipped == ("time", "comment")
    # With no epoch column, the step counter is the x axis, as written.
    assert (log.x_name, log.epochs) == ("step", (0, 1, 2))
    # A stray word in a numeric column is a gap, not a reason to drop the column.
    assert math.isnan(log.values["gpu"][2])


def test_repeated_epochs_keep_the_last_row_and_a_repeated_header_is_ignored(tmp_path):
    # What CSVLogger(append=True) leaves after a restart that redid epoch 1.
    text = "epoch,loss\n0,1.0\n1,0.8\nepoch,loss\n1,0.7\n2,0.6\n"
    log = read_log(write(tmp_path, text))
    assert log.epochs == (1, 2, 3)
    assert log.values["loss"] == (1.0, 0.7, 0.6)


def test_a_byte_order_mark_and_short_rows_are_tolerated(tmp_path):
    path = tmp_path / "log.csv"
    path.write_bytes("\ufeffepoch,loss,val_loss\n0,0.5\n1,0.4,0.45\n".encode())
    log = read_log(path)
    assert log.columns == ("loss", "val_loss")
    assert math.isnan(log.values["val_loss"][0])


def test_a_single_column_file_sniffs_a_comma():
    assert sniff_delimiter("epoch\n0\n1\n") == ","
    assert sniff_delimiter("epoch;loss\n") == ";"


def test_best_epoch_follows_the_mode_skips_nan_and_keeps_the_first_tie(tmp_path):
    text = "epoch,val_loss,val_accuracy\n0,0.5,0.7\n1,nan,0.9\n2,0.3,0.9\n3,0.3,0.8\n"
    log = read_log(write(tmp_path, text))
    assert best_epoch(log, "val_loss", "min") == (3, 0.3)
    assert best_epoch(log, "val_accuracy", "max") == (2, 0.9)
    assert best_epoch(log, "val_auc", "max") is None


def test_monitor_defaults_and_mode_inference():
    assert default_monitor(["loss", "val_loss"]) == "val_loss"
    assert default_monitor(["loss", "accuracy"]) == "loss"
    assert default_monitor(["mae"]) is None
    assert infer_mode("val_accuracy") == "max"
    assert infer_mode("val_loss", "auto") == "min"
    assert infer_mode("val_loss", "max") == "max"


@pytest.mark.parametrize("monitor, mode", [
    # Keras knows these, and their names hold none of the words a guess would go by.
    ("val_r2_score", "max"), ("cosine_similarity", "max"), ("val_fbeta_score", "max"),
    ("pearson_correlation", "max"), ("val_mean_absolute_percentage_error", "min"),
    ("val_precision", "max"),
    # Names Keras does not know are guessed from their words.
    ("val_top5_acc", "max"), ("val_my_iou", "max"), ("val_reconstruction_error", "min"),
])
def test_the_best_of_a_metric_goes_the_way_keras_says_it_improves(monitor, mode):
    assert infer_mode(monitor) == mode
    assert infer_mode(monitor, "auto") == mode


finite_or_not = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.just(None),  # a missing cell, written as NA like Keras does
)


# No deadline, no too_slow check: both time the examples, which a loaded machine stretches.
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sep=st.sampled_from([",", ";", "\t", "|"]),
    rows=st.lists(st.tuples(finite_or_not, finite_or_not), min_size=1, max_size=12),
)
def test_any_keras_style_log_reads_back_its_values(tmp_path_factory, sep, rows):
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=sep, lineterminator="\n")
    writer.writerow(["epoch", "loss", "val_loss"])
    for epoch, cells in enumerate(rows):
        writer.writerow([epoch] + ["NA" if c is None else repr(c) for c in cells])
    path = tmp_path_factory.mktemp("log") / "log.csv"
    path.write_text(buffer.getvalue())

    log = read_log(path)
    assert log.epochs == tuple(range(1, len(rows) + 1))
    for index, column in enumerate(("loss", "val_loss")):
        expected = [
            r[index] if r[index] is not None and math.isfinite(r[index]) else math.nan
            for r in rows
        ]
        got = log.values[column]
        assert [math.isnan(v) for v in got] == [math.isnan(v) for v in expected]
        assert [v for v in got if not math.isnan(v)] == [v for v in expected if not math.isnan(v)]
