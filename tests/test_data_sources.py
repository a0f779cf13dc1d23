"""Each data source trains from real files the tests write, saves what it learned (a
vocabulary, class names) in the run directory and evaluates its test split into run.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import cli, only_run, read_log, write_config
from datafiles import (
    LOADER,
    image_config,
    table_config,
    table_rows,
    write_csv,
    write_images,
    write_parquet,
    write_two_input_npz,
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One run per source, trained once for the module: {source: (code, run dir, output)}."""
    root = tmp_path_factory.mktemp("sources")
    rows = table_rows()
    write_csv(root / "animals.csv", rows)
    write_parquet(root / "animals.parquet", rows)
    write_images(root / "shapes")
    (root / "my_loader.py").write_text(LOADER)
    split = {"validation_split": 0.2, "test_split": 0.2, "batch_size": 16}
    configs = {
        "csv": table_config("csv", {"source": "csv", "path": "animals.csv",
                                    "label": "species", **split}),
        "parquet": table_config("parquet", {"source": "parquet", "path": "animals.parquet",
                                            "label": "species", "features": ["height_mm",
                                                                             "weight_g"],
                                            **split}, inputs=2),
        "images": image_config("images", {"path": "shapes", "validation_split": 0.25,
                                          "test_split": 0.25}),
        "python": table_config("python", {"source": "python", "function": "my_loader:load",
                                          "params": {"n": 64, "seed": 5}, "batch_size": 8},
                               units=2, inputs=4),
    }
    out = {}
    for source, config in configs.items():
        path = write_config(root, config, f"{source}.yaml")
        code = cli("train", path, "--runs-dir", root / "runs" / source, "--quiet")
        out[source] = (code, only_run(root / "runs" / source))
    return out


@pytest.mark.parametrize("source", ["csv", "parquet", "images", "python"])
def test_every_source_trains_and_evaluates_its_test_split_into_run_json(trained, source):
    code, run = trained[source]
    assert code == 0
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed"
    assert len(read_log(run / "log.csv")) == 3
    assert set(record["test"]) == {"test_loss", "test_accuracy"}
    assert 0.0 <= record["test"]["test_accuracy"] <= 1.0


def test_the_test_values_are_those_of_the_final_model_on_the_test_rows(trained, tmp_path):
    import keras

    from cbrun.engine.sources import data_for_run
    from cbrun.run.checkpoints import open_run

    _, run = trained["csv"]
    splits, saved = data_for_run(open_run(run))
    model = keras.saving.load_model(run / "model.keras")
    loss, accuracy = model.evaluate(splits.test.x, splits.test.y, batch_size=16, verbose=0)
    record = json.loads((run / "run.json").read_text())
    assert record["test"]["test_loss"] == pytest.approx(loss, rel=1e-6)
    assert record["test"]["test_accuracy"] == pytest.approx(accuracy, rel=1e-6)
    assert len(splits.test.y) == 30  # the last 20% of 150 rows
    assert saved["table.json"]["classes"]["species"] == ["cat", "dog", "fox"]


def test_a_table_saves_its_vocabulary_and_classes(trained):
    _, run = trained["csv"]
    saved = json.loads((run / "data" / "table.json").read_text())
    assert saved["vocabularies"] == {"colour": ["blue", "green", "red"]}
    assert saved["classes"] == {"species": ["cat", "dog", "fox"]}
    assert saved["features"] == ["height_mm", "weight_g", "colour"]


def test_new_rows_map_through_the_saved_vocabulary(trained):
    import pyarrow as pa

    from cbrun.data.tables import encode_table

    _, run = trained["csv"]
    saved = json.loads((run / "data" / "table.json").read_text())
    rows = pa.Table.from_pylist([{"height_mm": 1.0, "weight_g": 2.0, "colour": "red"},
                                 {"height_mm": 3.0, "weight_g": 4.0, "colour": "purple"}])
    x, y = encode_table(rows, saved, "new rows", labels=False)
    assert y is None
    # red is the third word (id 3); a colour never seen in training is 0.
    assert x.tolist() == [[1.0, 2.0, 3.0], [3.0, 4.0, 0.0]]


def test_images_save_their_class_names(trained):
    _, run = trained["images"]
    assert json.loads((run / "data" / "classes.json").read_text()) == ["bar", "square"]


def test_the_summary_and_cbrun_runs_show_the_test_value(trained, capsys):
    _, run = trained["images"]
    capsys.readouterr()
    assert cli("runs", run.parent, "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert set(listed[0]["test"]) == {"test_loss", "test_accuracy"}
    assert cli("runs", run.parent) == 0
    text = capsys.readouterr().out
    assert "test" in text and "test_loss" in text


def test_a_two_input_npz_gives_named_inputs_in_every_batch(tmp_path):
    from cbrun.config.data.npz import NpzData
    from cbrun.engine.data import train_dataset
    from cbrun.engine.sources import load_splits

    write_two_input_npz(tmp_path / "qa.npz")
    cfg = NpzData(source="npz", path="qa.npz", x={"story": "s", "question": "q"}, y="a",
                  validation_split=0.25, batch_size=8)
    assert cfg.preflight(tmp_path, seed=42) == []
    splits = load_splits(cfg, tmp_path, seed=42)
    assert set(splits.train.x) == {"story", "question"}
    assert len(splits.train) == 45 and len(splits.validation) == 15
    dataset, order = train_dataset(splits.train, 8, seed=1, shuffle=True, steps=6)
    order.set_epoch(0)
    x, y = next(iter(dataset))
    first = np.random.default_rng([1, 0]).permutation(45)[:8]
    np.testing.assert_array_equal(x["story"].numpy(), splits.train.x["story"][first])
    np.testing.assert_array_equal(x["question"].numpy(), splits.train.x["question"][first])
    np.testing.assert_array_equal(y.numpy(), splits.train.y[first])


def test_named_inputs_against_a_one_input_model_are_refused_before_training(tmp_path,
                                                                            capsys):
    write_two_input_npz(tmp_path / "qa.npz")
    config = table_config("qa", {"source": "npz", "path": "qa.npz",
                                 "x": {"story": "s", "question": "q"}, "y": "a"},
                          units=2, adapt=False, inputs=5)
    path = write_config(tmp_path, config)
    assert cli("validate", path) == 2  # before TensorFlow
    out = capsys.readouterr().out
    assert "data.x: a stack has one unnamed input, but the data names story, question" in out


def test_a_table_feeds_named_inputs_and_several_outputs(tmp_path):
    from cbrun.config.data.csv import CsvData
    from cbrun.engine.sources import load_splits

    rows = table_rows(20)
    write_csv(tmp_path / "animals.csv", rows)
    cfg = CsvData(source="csv", path="animals.csv", label=["species", "weight_g"],
                  features={"size": ["height_mm"], "look": ["colour"]})
    assert cfg.preflight(tmp_path, seed=42) == []
    splits = load_splits(cfg, tmp_path, seed=42)
    assert splits.train.x["size"][:, 0].tolist() == pytest.approx([r["height_mm"] for r in rows])
    colours = sorted({r["colour"] for r in rows})
    assert splits.train.x["look"][:, 0].tolist() == [colours.index(r["colour"]) + 1
                                                     for r in rows]
    assert splits.train.y["species"].tolist() == [["cat", "dog", "fox"].index(r["species"])
                                                  for r in rows]
    assert splits.train.y["weight_g"].dtype == np.float32


def _formats_folder(root: Path) -> Path:
    """Two classes, each with a PNG, a JPEG, a BMP and a GIF, grayscale and colour, one in a
    nested folder; plus the hidden files a Mac leaves behind."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, name in enumerate(["dark", "light"]):
        for i, (fmt, mode) in enumerate([("PNG", "RGB"), ("JPEG", "L"), ("BMP", "L"),
                                         ("GIF", "RGB"), ("BMP", "RGB")]):
            pixels = (rng.random((12, 10, 3)) * 60 + 150 * c).astype(np.uint8)
            image = Image.fromarray(pixels, "RGB").convert(mode)
            folder = root / name / ("more" if i == 4 else "")
            folder.mkdir(parents=True, exist_ok=True)
            image.save(folder / f"{i}.{fmt.lower()}", fmt)
        (root / name / "._0.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
        (root / name / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    return root


@pytest.mark.parametrize("color_mode, channels", [("grayscale", 1), ("rgb", 3), ("rgba", 4)])
def test_every_format_decodes_in_every_color_mode(tmp_path, color_mode, channels):
    """Keras's own loader fails on a grayscale BMP or GIF and an RGBA JPEG; cbrun decodes
    them and converts; nested folders count, hidden files do not."""
    from cbrun.config.data.images import ImagesData
    from cbrun.engine.data import eval_data
    from cbrun.engine.sources import load_splits

    _formats_folder(tmp_path / "mixed")
    cfg = ImagesData(source="images", path="mixed", image_size=[8, 8], color_mode=color_mode)
    assert cfg.preflight(tmp_path, seed=42) == []
    splits = load_splits(cfg, tmp_path, seed=42)
    assert [Path(p).relative_to(tmp_path / "mixed").as_posix()
            for p in splits.train.x.paths][:5] == [
        "dark/0.png", "dark/1.jpeg", "dark/2.bmp", "dark/3.gif", "dark/more/4.bmp"]
    data, _ = eval_data(splits.train, 4)
    images = np.concatenate([x.numpy() for x, _ in data])
    assert images.shape == (10, 8, 8, channels)
    # The light class is light in every format and mode (alpha, where added, is opaque).
    assert images[:5].mean() < 120 < images[5:, ..., :min(channels, 3)].mean()
    if channels == 4:
        assert set(np.unique(images[..., 3])) == {255.0}


def test_a_non_square_image_size_keeps_height_and_width_everywhere(tmp_path, capsys):
    """image_size is [height, width]. Images 24 high and 40 wide, resized to [12, 20]: a
    swap in the shape check, the decoding, the `cache: disk` copy or predict is a shape
    Keras refuses or pixels out of place. Predict on the folder reads the files training
    read: the ._ copies a Mac leaves are no images there either."""
    import tensorflow as tf
    from conftest import cli_output

    rng = np.random.default_rng(2)
    for name in ("top", "left"):
        (tmp_path / "halves" / name).mkdir(parents=True)
        for i in range(4):
            image = (rng.random((24, 40, 3)) * 40).astype(np.uint8)
            if name == "top":
                image[:12] = 230  # the upper half bright
            else:
                image[:, :20] = 230  # the left half bright
            (tmp_path / "halves" / name / f"{i}.png").write_bytes(
                tf.io.encode_png(image).numpy())
        (tmp_path / "halves" / name / "._0.png").write_bytes(b"\0\5\26\7 AppleDouble")
    # split: tail, so that the training files are known by name: 0-2 of each class.
    config = image_config("wide", {"path": "halves", "image_size": [12, 20], "cache": "disk",
                                   "validation_split": 0.25, "split": "tail"}, epochs=1)
    config["model"]["input_shape"] = [20, 12, 3]  # width first: refused before TensorFlow
    result = cli_output(capsys, "validate", write_config(tmp_path, config))
    assert ("model.input_shape: the training samples have shape [12, 20, 3], but the model "
            "expects input_shape [20, 12, 3]") in result.out, result.out

    config["model"]["input_shape"] = [12, 20, 3]
    assert cli("train", write_config(tmp_path, config), "--runs-dir", tmp_path / "runs",
               "-q") == 0
    run = only_run(tmp_path / "runs")
    # What training read: the disk copy, read back as the pipeline reads it. (A model takes
    # a [20, 12] image as well as a [12, 20] one, with a warning: the pixels must be right.)
    import keras

    from cbrun.config.data.images import ImagesData
    from cbrun.engine.sources import load_splits

    train = load_splits(ImagesData(**config["data"]), tmp_path, run, seed=config["seed"]).train
    assert train.x.raw
    images = train.x[np.arange(len(train))]
    left, top = images[0].mean(axis=2), images[-1].mean(axis=2)  # classes in name order
    assert top[:6].mean() > 200 and top[6:].mean() < 40
    assert left[:, :10].mean() > 200 and left[:, 10:].mean() < 40

    predicted = cli_output(capsys, "predict", run, tmp_path / "halves", "-o",
                           tmp_path / "p.csv")
    assert predicted.code == 0, predicted.err
    rows = {Path(row["file"]).relative_to(tmp_path / "halves").as_posix(): row
            for row in read_log(tmp_path / "p.csv")}
    assert len(rows) == 8
    # Predict decodes the files itself: the model must see them as training did.
    model = keras.saving.load_model(run / "model.keras")
    trained_on = [f"{name}/{i}.png" for name in ("left", "top") for i in range(3)]
    np.testing.assert_allclose([float(rows[name]["probability"]) for name in trained_on],
                               model.predict(images, verbose=0).max(axis=1), rtol=1e-4)
