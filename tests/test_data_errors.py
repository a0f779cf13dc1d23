"""Data problems are config errors at the line of the config, found before TensorFlow is
imported and before a run directory exists."""

from __future__ import annotations

import re

import numpy as np
import pytest
import yaml
from conftest import HANG_S, cbrun_process, cli, tiny_config, write_config
from datafiles import (
    damage_pixels,
    image_config,
    table_config,
    table_rows,
    write_csv,
    write_images,
    write_parquet,
)

from tests.helpers.light import run_cbrun

CSV = {"source": "csv", "path": "animals.csv", "label": "species"}


def check(tmp_path, capsys, config: dict, *args: str) -> str:
    """`cbrun train` must refuse the config with exit 2, create no run directory, and say
    why at a line of the config file."""
    path = write_config(tmp_path, config)
    capsys.readouterr()
    assert cli("train", path, "--runs-dir", tmp_path / "runs", *args) == 2
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    err = capsys.readouterr().err
    assert f"{path}:" in err and "Traceback" not in err
    return err


def test_a_column_that_does_not_exist_gets_a_did_you_mean_without_tensorflow(tmp_path):
    write_csv(tmp_path / "animals.csv", table_rows(20))
    path = write_config(tmp_path, table_config("typo", {**CSV, "label": "specie"}))
    result = run_cbrun(["validate", path])
    (validate,) = result.commands
    assert validate.code == 2 and result.heavy == []
    out = validate.out
    line = yaml.safe_dump(table_config("typo", {**CSV, "label": "specie"}),
                          sort_keys=False).splitlines().index("  label: specie") + 1
    assert (f"{path}:{line}:10: data.label: animals.csv has no column 'specie' (did you "
            "mean 'species'?); its columns: height_mm, weight_g, colour, species") in out


def test_missing_values_are_named_with_their_lines_in_every_column_at_once(tmp_path, capsys):
    rows = table_rows(20)
    rows[3]["weight_g"] = ""
    rows[7]["weight_g"] = ""
    rows[11]["colour"] = ""  # an empty text field is missing too, not a category ""
    write_csv(tmp_path / "animals.csv", rows)
    err = check(tmp_path, capsys, table_config("holes", CSV))
    assert ("column 'weight_g' of animals.csv has 2 missing values (line 5, 9 of the file); "
            "column 'colour' of animals.csv has 1 missing value (line 13 of the file); fill "
            "or drop them before training") in err


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_a_date_column_is_named_not_a_numpy_traceback(tmp_path, capsys, kind):
    rows = [{**r, "seen": f"2024-03-{i % 28 + 1:02d}"} for i, r in enumerate(table_rows(20))]
    if kind == "csv":
        write_csv(tmp_path / "animals.csv", rows)
        data = CSV
    else:
        import datetime

        write_parquet(tmp_path / "animals.parquet", [
            {**r, "seen": datetime.date.fromisoformat(r["seen"])} for r in rows])
        data = {**CSV, "source": "parquet", "path": "animals.parquet"}
    err = check(tmp_path, capsys, table_config("dates", {**data, "features": [
        "height_mm", "seen"]}, inputs=2))
    assert "column 'seen' (date32[day]) of animals." in err
    assert "holds neither numbers, true/false nor text; leave it out of features" in err


def test_a_validation_file_with_a_class_training_never_shows(tmp_path, capsys):
    write_csv(tmp_path / "animals.csv", [r for r in table_rows(40) if r["species"] != "fox"])
    write_csv(tmp_path / "val.csv", table_rows(10))
    err = check(tmp_path, capsys, table_config("unseen", {**CSV, "validation_path": "val.csv"}))
    assert "data.validation_path" in err
    assert "label value 'fox' in column 'species' that the training rows never show" in err


def test_a_file_that_is_not_a_table(tmp_path, capsys):
    (tmp_path / "animals.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00binary\x00\n1,2,3\n")
    err = check(tmp_path, capsys, table_config("binary", CSV))
    assert "animals.csv is not a readable csv table" in err


def test_a_corrupt_image_is_named_before_training(tmp_path, capsys):
    write_images(tmp_path / "shapes", per_class=3)
    good = tmp_path / "shapes" / "bar" / "01.png"
    (tmp_path / "shapes" / "bar" / "02.png").write_bytes(good.read_bytes()[:60])
    (tmp_path / "shapes" / "square" / "notes.jpg").write_text("not an image")
    err = check(tmp_path, capsys, image_config("corrupt", {"path": "shapes"}))
    assert "shapes/bar/02.png is a PNG cut short (no IEND chunk at its end)" in err
    assert "shapes/square/notes.jpg is not a PNG, JPEG, GIF or BMP image" in err


def test_an_npz_array_with_zero_dimensions_exits_2_before_a_run_directory(tmp_path, capsys):
    np.savez(tmp_path / "flat.npz", x=np.float32(3.0), y=np.arange(4))
    err = check(tmp_path, capsys, tiny_config(data={"source": "npz", "path": "flat.npz"}))
    assert "array 'x' in flat.npz has 0 dimensions (one value)" in err


def test_npz_arrays_of_different_lengths(tmp_path, capsys):
    np.savez(tmp_path / "odd.npz", x=np.zeros((5, 64)), y=np.zeros(4))
    err = check(tmp_path, capsys, tiny_config(data={"source": "npz", "path": "odd.npz"}))
    assert "hold different numbers of samples (x: 5, y: 4)" in err


@pytest.mark.parametrize("value", [True, "3", 2.0])
def test_batch_size_is_strict(tmp_path, capsys, value):
    err = check(tmp_path, capsys, tiny_config(data={"source": "digits", "batch_size": value}))
    assert "data.batch_size" in err


def test_an_unknown_source_lists_the_sources(tmp_path, capsys):
    err = check(tmp_path, capsys, tiny_config(data={"source": "cvs", "path": "a.csv"}))
    assert "unknown source 'cvs' (did you mean 'csv'?)" in err


def test_labels_beyond_the_last_layer_are_caught_before_the_first_epoch(tmp_path, capsys):
    write_csv(tmp_path / "animals.csv", table_rows(30))
    config = table_config("narrow", CSV, units=2)
    err = check(tmp_path, capsys, config)
    assert "the training labels run from 0 to 2, but the last layer has 2 outputs" in err


def test_keras_offline_names_the_file_keras_looks_for(tmp_path):
    """No network (a proxy that refuses), an empty KERAS_HOME: a clear error, no traceback."""
    config = {**tiny_config(), "data": {"source": "keras", "name": "boston_housing"},
              "model": {"input_shape": [13], "layers": [{"type": "Dense", "units": 1}]},
              "compile": {"optimizer": "adam", "loss": "mse"}}
    path = write_config(tmp_path, config)
    home = tmp_path / "keras_home"
    home.mkdir()
    offline = {"KERAS_HOME": str(home), "HTTPS_PROXY": "http://127.0.0.1:9",
               "https_proxy": "http://127.0.0.1:9"}
    proc = cbrun_process("train", path, "--runs-dir", tmp_path / "runs", env=offline)
    out, err = proc.communicate(timeout=HANG_S)
    assert proc.returncode == 2, err
    assert "Traceback" not in err
    assert re.search(rf"{re.escape(str(path))}:\d+:\d+: data.name: keras.datasets.boston_housing "
                     "could not download", err), err
    assert not any((tmp_path / "runs").iterdir()), "nothing trained, no run directory kept"
    assert f"Keras looks for:\n  {home}/datasets/boston_housing.npz" in err
    assert "Keras checks each file's hash" in err
    # A stand-in file in the cache is what Keras reads first: its hash does not match, so
    # Keras tries to download the original, which fails the same way.
    (home / "datasets" / "boston_housing.npz").write_bytes(b"stand-in")
    proc = cbrun_process("train", path, "--runs-dir", tmp_path / "runs2", env=offline)
    out, err = proc.communicate(timeout=HANG_S)
    assert proc.returncode == 2
    assert "hash does not match" in out
    assert "Keras looks for:" in err


@pytest.mark.parametrize("cache", [None, "memory", "disk"])
def test_an_image_damaged_inside_is_named_when_it_fails_to_decode(tmp_path, capsys, cache):
    """A PNG whose ends look whole and whose CRCs are right passes the preflight; its
    damaged pixels are found by the decoder during training, and the error names the file,
    not tf.data's stack."""
    write_images(tmp_path / "shapes", per_class=4)
    damage_pixels(tmp_path / "shapes" / "square" / "03.png", checksums="fixed")
    path = write_config(tmp_path, image_config("damaged", {"path": "shapes", "cache": cache},
                                               epochs=1))
    capsys.readouterr()
    assert cli("train", path, "--runs-dir", tmp_path / "runs") == 1
    err = capsys.readouterr().err
    assert f"cannot decode the image {tmp_path}/shapes/square/03.png (" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("kind", ["npz", "csv", "images"])
def test_samples_that_do_not_fit_input_shape_are_found_from_the_headers(tmp_path, kind):
    """Before TensorFlow: `cbrun validate` compares the data's sample shape (npz header,
    table columns, image_size) with the stack's input_shape."""
    if kind == "npz":
        np.savez(tmp_path / "a.npz", x=np.zeros((4, 32)), y=np.zeros(4))
        config = tiny_config(data={"source": "npz", "path": "a.npz"})
        given, wanted = [32], [64]
    elif kind == "csv":
        write_csv(tmp_path / "animals.csv", table_rows(10))
        config = table_config("wide", CSV, inputs=4)
        given, wanted = [3], [4]
    else:
        write_images(tmp_path / "shapes", per_class=2)
        config = image_config("gray", {"path": "shapes", "color_mode": "grayscale"})
        given, wanted = [16, 16, 1], [16, 16, 3]
    path = write_config(tmp_path, config)
    result = run_cbrun(["validate", path])
    assert result.heavy == []
    assert (f"model.input_shape: the training samples have shape {given}, but the model "
            f"expects input_shape {wanted}") in result.commands[0].out


PICKY_LOADER = '''
import numpy as np


def load(kind):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    if kind == "no_validation":
        return {"train": (x, y)}
    if kind == "short_y":
        return {"train": (x, y[:50])}
    if kind == "wide_y":
        return {"train": (x, np.stack([y] * 4, axis=1).astype("float32")),
                "validation": (x[:5], np.stack([y[:5]] * 4, axis=1).astype("float32"))}
    return {"train": (x[:50], y[:50]), "validation": (x[50:], y[50:])}
'''


def _loader_config(tmp_path, kind: str, **data) -> dict:
    (tmp_path / "picky.py").write_text(PICKY_LOADER)
    config = table_config("picky", {"source": "python", "function": "picky:load",
                                    "params": {"kind": kind}, **data}, units=2, adapt=False,
                          inputs=4, epochs=2)
    config["callbacks"] = [{"type": "EarlyStopping", "monitor": "val_loss", "patience": 1}]
    return config


def test_a_loader_s_validation_split_is_watchable_and_trains(tmp_path, capsys):
    """The config cannot see what a loader returns: callbacks may watch val_ values."""
    path = write_config(tmp_path, _loader_config(tmp_path, "good"))
    assert cli("validate", path) == 0
    assert cli("train", path, "--runs-dir", tmp_path / "runs", "-q") == 0
    from conftest import only_run, read_log

    assert "val_loss" in read_log(only_run(tmp_path / "runs") / "log.csv")[0]


@pytest.mark.parametrize("kind, data, where, message", [
    ("no_validation", {}, "callbacks[0].monitor",
     ("EarlyStopping watches 'val_loss', but the data has no validation split (the loader "
     "returned no 'validation')")),
    ("good", {"validation_split": 0.2}, "data.function",
     ("picky:load returned a 'validation' split and validation_split is set; use one or the "
     "other")),
    ("short_y", {}, "data.function",
     "the loader's 'train' arrays hold different numbers of samples (x 60, y 50)"),
])
def test_a_loader_s_splits_are_checked_before_the_first_epoch(tmp_path, capsys, kind, data,
                                                               where, message):
    path = write_config(tmp_path, _loader_config(tmp_path, kind, **data))
    err = check(tmp_path, capsys, yaml.safe_load(path.read_text()))
    assert f"{where}: {message}" in err, err


def test_targets_wider_than_the_output_are_refused_not_broadcast(tmp_path, capsys):
    config = _loader_config(tmp_path, "wide_y")
    config["model"]["layers"][-1] = {"type": "Dense", "units": 1}
    config["compile"].update(loss="mse", metrics=["mae"])
    err = check(tmp_path, capsys, config)
    assert ("model.layers[1]: the training labels have shape [4] per sample, but the last "
            "layer gives [1]; make the layer's output match the targets") in err, err
