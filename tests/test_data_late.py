"""Data that passes a first look and fails later: pixels damaged inside an image whose ends
are whole, a class too small for the split, a CSV that breaks after pyarrow's first block,
a loader's odd return values, an evaluation dataset that never ends. Each is found as early
as it can be and said in one line that names the file, the line or the loader; a test
image that fails after training keeps the trained run."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest
from conftest import cbrun_process, cli_output, only_run, write_config
from datafiles import (
    damage_pixels,
    image_config,
    table_config,
    table_rows,
    write_csv,
    write_images,
)

# --- images ---------------------------------------------------------------------------


def test_a_png_damaged_inside_is_named_by_validate(tmp_path, capsys):
    """Its signature and IEND are intact; its pixels fail their CRC, which TensorFlow's
    decoder checks too: validate names it, before any epoch."""
    write_images(tmp_path / "shapes", per_class=3)
    damage_pixels(tmp_path / "shapes" / "square" / "01.png", checksums="stale")
    path = write_config(tmp_path, image_config("crc", {"path": "shapes"}))
    result = cli_output(capsys, "validate", path)
    assert result.code == 2
    assert ("shapes/square/01.png is a damaged PNG (its IDAT chunk at byte 33 "
            "fails its CRC check); remove or replace it") in result.out, result.out


def test_a_class_left_without_training_images_is_found_by_validate(tmp_path, capsys):
    write_images(tmp_path / "shapes", per_class=4)
    for name in ("00.jpg", "01.png", "02.jpg"):
        (tmp_path / "shapes" / "bar" / name).unlink()
    # Each class's last files held out: bar's only image is its validation image.
    path = write_config(tmp_path, image_config("few", {"path": "shapes", "split": "tail",
                                                       "validation_split": 0.25}))
    result = cli_output(capsys, "validate", path)
    assert result.code == 2
    assert ("data.path: validation_split 0.25 leaves class bar (1 image) of shapes no "
            "training images; add images to it or lower the split") in result.out, result.out


def test_a_test_image_that_fails_to_decode_keeps_the_trained_run(tmp_path, capsys):
    """The damage passes every check short of decoding (its CRCs are right): the test split
    fails after the last epoch. The run stays completed with its model, run.json says what
    failed, and evaluate and predict name the file too."""
    write_images(tmp_path / "shapes", per_class=4)
    write_images(tmp_path / "test", per_class=2, seed=1)
    bad = damage_pixels(tmp_path / "test" / "square" / "01.png", checksums="fixed")
    path = write_config(tmp_path, image_config("late", {"path": "shapes", "test_path": "test"},
                                               epochs=1))
    result = cli_output(capsys, "train", path, "--runs-dir", tmp_path / "runs", "-q")
    run = only_run(tmp_path / "runs")
    named = f"cannot decode the image {bad} (Invalid PNG data"
    assert result.code == 1
    assert f"error: the test split was not evaluated: {named}" in result.err, result.err
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed" and record["epochs_done"] == 1
    assert record["test"] is None and named in record["error"]
    assert (run / "model.keras").is_file()

    again = cli_output(capsys, "evaluate", run, "--split", "test")
    assert again.code == 1 and named in again.err, again.err
    predicted = cli_output(capsys, "predict", run, tmp_path / "test", "-o", tmp_path / "p.csv")
    assert predicted.code == 2 and named in predicted.err, predicted.err
    assert not (tmp_path / "p.csv").exists()


# --- CSV past pyarrow's first block ---------------------------------------------------

ROWS = 60_000  # about 1.4 MB: the damage at line 50001 lies past pyarrow's first 1 MB block
CSV_CASES = {
    "extra-field": (lambda line: line.rstrip("\n") + ",7\n",
                    ("line 50001 has 5 fields where the header has 4; every row needs one "
                     "field per column")),
    "stray-quote": (lambda line: line.replace(",", ',"', 1),
                    ("line 50001 opens a quoted value that runs on to line 60001 and the "
                     "row has 2 fields where the header has 4; a quote inside a value must be "
                     'doubled ("") or the whole value quoted')),
    "not-utf8": (lambda line: line.replace(",", ",\udcff", 1),
                 ("column 'weight_g' has bytes that are not UTF-8 text at line 50001 (byte "
                  "0xff); save the file as UTF-8")),
    "text-in-numbers": (lambda line: "abc," + line.split(",", 1)[1],
                        ("column 'height_mm' holds numbers in its first rows, but line 50001 "
                         "has 'abc'")),
}


@pytest.fixture(scope="module")
def big_csv_lines(tmp_path_factory) -> list[str]:
    path = write_csv(tmp_path_factory.mktemp("csv") / "animals.csv", table_rows(ROWS))
    return path.read_text().splitlines(keepends=True)


@pytest.mark.parametrize("case", list(CSV_CASES))
def test_a_csv_that_breaks_after_the_first_block_is_one_line_with_its_line(
        tmp_path, capsys, big_csv_lines, case):
    change, message = CSV_CASES[case]
    lines = list(big_csv_lines)
    lines[50_000] = change(lines[50_000])  # line 50001 of the file
    # A lone surrogate written back as the byte it stood for: 0xff, which is not UTF-8.
    (tmp_path / "animals.csv").write_bytes("".join(lines).encode("utf-8", "surrogateescape"))
    config = table_config("late", {"source": "csv", "path": "animals.csv", "label": "species"})
    path = write_config(tmp_path, config)

    checked = cli_output(capsys, "validate", path)
    assert checked.code == 2
    assert f"data.path: animals.csv is not a readable csv table: {message}" in checked.out, \
        checked.out
    trained = cli_output(capsys, "train", path, "--runs-dir", tmp_path / "runs")
    assert trained.code == 2 and message in trained.err, trained.err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    started = cli_output(capsys, "init", tmp_path / "animals.csv", "-o", tmp_path / "init.yaml")
    assert started.code == 2 and message in started.out + started.err, started.err


# --- a Python loader's return values --------------------------------------------------

ODD_LOADER = '''
import numpy as np
import tensorflow as tf


def load(kind):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    if kind == "raises":
        raise ValueError("no data on Sundays")
    if kind == "no-train":
        return {"train": None, "validation": (x, y)}
    if kind == "ragged":
        return {"train": ([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0]] * 20, [0, 1] * 20)}
    if kind == "objects":
        return {"train": (x, [0, None] * 20)}
    if kind == "inputs-only":
        return {"train": tf.data.Dataset.from_tensor_slices(x).batch(8)}
    if kind == "endless-validation":
        return {"train": batches, "validation": batches.repeat()}
    if kind == "endless-test":
        return {"train": batches, "test": batches.repeat()}
    if kind == "generated-test":  # endless, and its length unknown: not refusable
        def forever():
            while True:
                yield x[:8], y[:8]
        return {"train": batches, "test": tf.data.Dataset.from_generator(forever, output_signature=(
            tf.TensorSpec((None, 4), tf.float32), tf.TensorSpec((None,), tf.int32)))}
'''


def _loader_config(tmp_path, kind: str) -> dict:
    (tmp_path / "odd.py").write_text(ODD_LOADER)
    return table_config("odd", {"source": "python", "function": "odd:load",
                                "params": {"kind": kind}}, units=2, adapt=False, inputs=4,
                        epochs=1)


@pytest.mark.parametrize("kind, message", [
    ("raises", "odd:load(**params) raised ValueError: no data on Sundays"),
    ("no-train", "odd:load returned None for 'train'; the training split is required"),
    ("ragged", ("odd:load returned a ragged 'train' x (rows of different lengths or shapes); "
                "pad them to one shape")),
    ("objects", "odd:load returned a 'train' y of Python objects (None, or values of mixed"),
    ("inputs-only", ("odd:load returned a 'train' dataset whose elements are single tensors, "
                     "not (x, y) batches")),
])
def test_what_a_loader_returns_is_checked_before_the_first_epoch(tmp_path, capsys, kind,
                                                                  message):
    path = write_config(tmp_path, _loader_config(tmp_path, kind))
    result = cli_output(capsys, "train", path, "--runs-dir", tmp_path / "runs")
    assert result.code == 2
    assert f"data.function: {message}" in result.err, result.err
    assert not any((tmp_path / "runs").iterdir()), "refused before the first epoch"


@pytest.mark.parametrize("split", ["validation", "test"])
def test_an_endless_evaluation_dataset_is_refused_before_the_first_epoch(tmp_path, split):
    """Keras evaluates validation and test to their end: one that repeats forever would
    hang the run (in a process of its own here, so that a hang fails the test)."""
    path = write_config(tmp_path, _loader_config(tmp_path, f"endless-{split}"))
    proc = cbrun_process("train", path, "--runs-dir", tmp_path / "runs")
    try:
        _, err = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"an endless {split} dataset was not refused")
    assert proc.returncode == 2, err
    assert (f"data.function: odd:load returned a {split!r} dataset that never ends (a "
            f".repeat()?); Keras evaluates the {split} split to its end") in err, err
    assert not any((tmp_path / "runs").iterdir())


def test_an_endless_test_dataset_stops_at_the_first_sigterm(tmp_path):
    """A generator's length is unknown, so it cannot be refused: the test evaluation after
    training then never ends, and one SIGTERM must stop it (it waited for a second one)."""
    path = write_config(tmp_path, _loader_config(tmp_path, "generated-test"))
    proc = cbrun_process("train", path, "--runs-dir", tmp_path / "runs", "-q")
    try:
        deadline = time.monotonic() + 180
        while not list((tmp_path / "runs").glob("*/model.keras")):  # saved before the test
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.2)
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("the first SIGTERM did not stop the test evaluation")
    assert proc.returncode == 75, err
    assert "Traceback" not in err
    record = json.loads((only_run(tmp_path / "runs") / "run.json").read_text())
    assert record["status"] == "interrupted" and record["epochs_done"] == 1

