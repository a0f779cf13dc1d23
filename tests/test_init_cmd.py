"""`cbrun init DATA` writes a commented config that validates and trains as it is."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from conftest import cli, cli_output, only_run
from datafiles import SPECIES, review_rows, table_rows, write_csv, write_images, write_parquet

from tests.helpers.light import run_cbrun


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    """init writes its config into the current folder: each test's own."""
    monkeypatch.chdir(tmp_path)


def make(kind: str, folder):
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "csv":
        return write_csv(folder / "animals.csv", table_rows(60))
    if kind == "parquet":
        return write_parquet(folder / "animals.parquet", table_rows(60))
    if kind == "text":  # free text, a category, a number, and odd column names
        rows = [{"Review text": r["review"], "stars": r["stars"], "length (chars)": r["length"],
                 "verdict": r["verdict"]} for r in review_rows(80)]
        return write_csv(folder / "reviews.csv", rows)
    if kind == "images":
        return write_images(folder / "shapes", per_class=5)
    rng = np.random.default_rng(0)
    path = folder / "arrays.npz"
    np.savez(path, x=rng.normal(size=(50, 4, 4)).astype("float32"),
             y=rng.integers(0, 3, 50))
    return path


@pytest.mark.parametrize("kind", ["csv", "parquet", "text", "images", "npz"])
def test_init_writes_a_config_that_validates_and_trains(tmp_path, capsys, kind):
    data = make(kind, tmp_path / "data")
    output = tmp_path / "configs" / "start.yaml"  # a folder init makes
    assert cli("init", data, "--output", output) == 0
    text = output.read_text()
    assert text.startswith("# Written by `cbrun init")
    assert cli("validate", output) == 0
    assert cli("train", output, "--set", "fit.epochs=2", "--runs-dir", tmp_path / "runs",
               "-q") == 0
    record = json.loads((only_run(tmp_path / "runs") / "run.json").read_text())
    assert record["status"] in ("completed", "stopped_early")


def test_init_guesses_the_label_and_its_classes_from_a_table(tmp_path):
    data = make("csv", tmp_path)
    assert cli("init", data) == 0
    text = (tmp_path / "animals.yaml").read_text()
    assert "label: species   # the target: 3 classes (cat, dog, fox)" in text
    # colour is a category: its own string input, one-hot inside the model.
    assert "colour: [colour]" in text and "text: [colour]" in text
    assert ("{name: colour_onehot, type: StringLookup, adapt: true, output_mode: one_hot, "
            "max_tokens: 4, pad_to_max_tokens: true, inputs: colour}") in text
    assert "{name: numbers_scaled, type: Normalization, adapt: true, inputs: numbers}" in text
    assert "split: stratified" in text


def test_init_reads_free_text_as_text_and_categories_as_categories(tmp_path):
    data = make("text", tmp_path)
    assert cli("init", data) == 0
    text = (tmp_path / "reviews.yaml").read_text()
    assert "text: [Review text, stars]" in text
    assert "Review_text: [Review text]" in text
    assert "length_chars: [length (chars)]" in text
    assert "type: TextVectorization, adapt: true" in text
    assert "{name: stars_onehot, type: StringLookup" in text


def test_init_takes_a_regression_label_and_refuses_an_unknown_one(tmp_path, capsys):
    data = make("csv", tmp_path)
    assert cli("init", data, "--label", "weight_g") == 0
    text = (tmp_path / "animals.yaml").read_text()
    assert "loss: mse" in text and "units: 1" in text
    assert "{name: weight_g, type: Normalization, invert: true, adapt: targets" in text
    assert "split: random" in text
    capsys.readouterr()
    assert cli("init", data, "--label", "wieght_g", "--force") == 2
    assert "no column 'wieght_g' (did you mean 'weight_g'?)" in capsys.readouterr().err


def test_init_does_not_overwrite_and_does_not_import_tensorflow(tmp_path):
    data = make("npz", tmp_path)
    table = make("csv", tmp_path)
    result = run_cbrun(["init", data], ["init", data], ["init", table, "--label", "weight_g"],
                       cwd=tmp_path)
    _, again, table_init = result.commands
    assert result.codes == [0, 2, 0] and result.heavy == []
    assert "arrays.yaml exists" in again.err and table_init.out.startswith("wrote")


def trains(config, runs) -> dict:
    """`cbrun validate` then two epochs of `cbrun train`; the run's record."""
    assert cli("validate", config) == 0
    assert cli("train", config, "--set", "fit.epochs=2", "--runs-dir", runs, "-q") == 0
    return json.loads((only_run(runs) / "run.json").read_text())


def semicolon_rows(n: int = 40) -> str:
    """A European export: `;` between fields, a decimal comma in one column."""
    rows = ["height;weight_kg;species"]
    for i in range(n):
        rows.append(f"{100 + 3 * i};{i % 7},{i % 10};{SPECIES[i % 3]}")
    return "\n".join(rows) + "\n"


SEMICOLONS = ("animals.csv is not a comma-separated table (line 2 has 2 fields where the "
              "header has 1); if it uses another delimiter, pass --delimiter ';'")
RAGGED = ("animals.csv: line 32 has 3 fields where the header has 2; every row needs one "
          "field per column")
ONLY_DATES = ("animals.csv has no column cbrun can take as an input besides 'y': day: a date; "
              "cbrun takes numbers and text")
UNREADABLE = {
    "semicolons": (semicolon_rows(), SEMICOLONS),
    "binary": (bytes(range(256)) * 4, "animals.csv is not a text file (it holds binary bytes)"),
    "latin-1": ("name,kind\ncafé,a\n".encode("latin-1"),
                "animals.csv is not UTF-8 text (byte 0xe9 at offset 13); save it as UTF-8"),
    "utf-16": ("name,kind\ncafe,a\n".encode("utf-16"), "animals.csv is UTF-16 text"),
    "empty": ("", "animals.csv is empty; a CSV table starts with a header row"),
    "header only": ("height,species\n", "animals.csv has a header (height, species) but no rows"),
    "a ragged row": ("height,species\n" + "1,cat\n" * 30 + "2,dog,3\n", RAGGED),
    "a name twice": ("a,a,b\n1,2,x\n", "animals.csv has the column name 'a' more than once"),
    "parquet": (b"PAR1 but not really" * 5, "animals.parquet is not a readable Parquet table: "),
    "only dates": ("day,y\n2024-01-01,1\n2024-01-02,0\n", ONLY_DATES),
}


@pytest.mark.parametrize("case", list(UNREADABLE))
def test_init_says_in_one_line_why_it_cannot_use_a_table(tmp_path, capsys, case):
    content, expected = UNREADABLE[case]
    data = tmp_path / ("animals.parquet" if case == "parquet" else "animals.csv")
    (data.write_bytes if isinstance(content, bytes) else data.write_text)(content)
    assert cli("init", data) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "animals.yaml").exists()


def test_init_with_a_delimiter_writes_it_into_a_config_that_trains(tmp_path, capsys):
    data = tmp_path / "animals.csv"
    data.write_text(semicolon_rows())
    assert cli("init", data, "--delimiter", ";") == 0
    text = (tmp_path / "animals.yaml").read_text()
    assert "delimiter: ;" in text
    assert "features: [height, weight_kg]" in text
    assert "decimal: ','   # weight_kg: numbers with decimal commas" in text
    assert "text:" not in text  # weight_kg is read as numbers, not categories
    assert trains(tmp_path / "animals.yaml", tmp_path / "runs")["status"] in (
        "completed", "stopped_early")
    capsys.readouterr()
    assert cli("init", make("parquet", tmp_path / "pq"), "--delimiter", ";") == 2
    assert "--delimiter is for a .csv table" in capsys.readouterr().err


ODD_NAMES = ["yes", "no", "null", "true", "on", "~", "1.5", "a: b", "#x", "-x"]


def test_init_quotes_column_names_yaml_would_read_as_something_else(tmp_path):
    import yaml

    rng = np.random.default_rng(0)
    rows = [{**{name: round(float(rng.normal()), 3) for name in ODD_NAMES},
             "off": ["low", "high"][i % 2]} for i in range(40)]
    data = write_csv(tmp_path / "odd.csv", rows)
    assert cli("init", data, "--label", "off") == 0
    config = yaml.safe_load((tmp_path / "odd.yaml").read_text())
    assert config["data"]["label"] == "off"
    assert config["data"]["features"] == ODD_NAMES
    assert trains(tmp_path / "odd.yaml", tmp_path / "runs")["status"] in (
        "completed", "stopped_early")


def test_init_quotes_odd_names_as_graph_inputs_too(tmp_path):
    import yaml

    rows = [{"yes": r["review"], "no": r["length"], "verdict": r["verdict"]}
            for r in review_rows(40)]
    assert cli("init", write_csv(tmp_path / "r.csv", rows)) == 0
    config = yaml.safe_load((tmp_path / "r.yaml").read_text())
    assert config["data"]["features"] == {"c_yes": ["yes"], "c_no": ["no"]}
    assert config["data"]["text"] == ["yes"]
    assert set(config["model"]["inputs"]) == {"c_yes", "c_no"}
    assert cli("validate", tmp_path / "r.yaml") == 0


def test_init_leaves_out_dates_and_takes_a_bool_label_as_two_classes(tmp_path):
    lines = [",day,seen_at,at,raining,temperature,cold"]  # pandas's unnamed row index first
    for i in range(40):
        cold = i % 2 == 0
        lines.append(f"{i},2024-01-{1 + i % 28:02d},2024-01-01 10:{i:02d}:00,12:{i:02d}:00,"
                     f"{'true' if i % 3 else 'false'},{(-5 if cold else 15) + i % 4},"
                     f"{'true' if cold else 'false'}")
    data = tmp_path / "weather.csv"
    data.write_text("\n".join(lines) + "\n")
    assert cli("init", data) == 0
    text = (tmp_path / "weather.yaml").read_text()
    assert "label: cold   # the target: 2 classes (false 0, true 1)" in text
    assert "features: [raining, temperature]" in text
    assert "# left out: 'day' (a date; cbrun takes numbers and text)" in text
    assert "# left out: 'seen_at' (a timestamp; cbrun takes numbers and text)" in text
    assert "# left out: 'at' (a time of day; cbrun takes numbers and text)" in text
    assert "# left out: '' (a column without a name: a saved row index?)" in text
    assert "{type: Dense, units: 2, activation: softmax}" in text
    assert "sparse_categorical_crossentropy" in text
    record = trains(data.with_suffix(".yaml"), tmp_path / "runs")
    assert record["status"] in ("completed", "stopped_early")


@pytest.mark.parametrize("shape", [(4,), (4, 2)])
def test_init_gives_an_npz_regression_the_width_of_y(tmp_path, shape):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 8)).astype("float32")
    y = (x[:, :int(np.prod(shape))] * 2).reshape(60, *shape)
    np.savez(tmp_path / "boxes.npz", x=x, y=y)
    assert cli("init", tmp_path / "boxes.npz") == 0
    text = (tmp_path / "boxes.yaml").read_text()
    units = int(np.prod(shape))
    assert f"{{type: Dense, units: {units}}}   # a regression" in text
    # Scaled targets, back in the data's units at the output (not after a Reshape).
    assert ("adapt: targets" in text) == (len(shape) == 1)
    assert ("{type: Reshape, target_shape: [4, 2]}" in text) == (len(shape) == 2)
    assert "loss: mse" in text
    assert trains(tmp_path / "boxes.yaml", tmp_path / "runs")["status"] in (
        "completed", "stopped_early")


def test_init_takes_as_npz_targets_a_label_array_of_class_ids(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "mixed.npz", inputs=rng.normal(size=(50, 3)).astype("float32"),
             row_id=np.arange(50), boxes=rng.normal(size=(50, 4)).astype("float32"),
             labels=rng.integers(0, 3, 50))
    assert cli("init", tmp_path / "mixed.npz") == 0
    text = (tmp_path / "mixed.yaml").read_text()
    assert "x: inputs\n  y: labels   # the target: 3 classes (integer ids)\n" in text
    assert "{type: Dense, units: 3, activation: softmax}" in text


def test_init_names_the_config_after_the_output_file(tmp_path):
    data = make("csv", tmp_path)
    assert cli("init", data, "--output", tmp_path / "kind.yaml") == 0
    assert "\nname: kind\n" in (tmp_path / "kind.yaml").read_text()
    assert cli("init", data, "--output", tmp_path / "yes.yaml") == 0
    assert "\nname: 'yes'\n" in (tmp_path / "yes.yaml").read_text()
    assert cli("validate", tmp_path / "yes.yaml") == 0


def test_init_reads_a_train_val_test_layout_of_images(tmp_path):
    ds = tmp_path / "ds"
    for split, seed in (("train", 0), ("val", 1), ("test", 2)):
        write_images(ds / split, per_class=4, seed=seed)
    assert cli("init", ds) == 0
    text = (tmp_path / "ds.yaml").read_text()
    assert "path: ds/train   # 2 class folders, 8 images" in text
    assert "validation_path: ds/val   # 8 images" in text
    assert "test_path: ds/test   # 8 images" in text
    assert "validation_split" not in text
    run = trains(tmp_path / "ds.yaml", tmp_path / "runs")
    assert run["status"] in ("completed", "stopped_early")


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("images") / "shapes", per_class=4)


def _spoil(folder, how):
    if how == "an empty class folder":
        (folder / "circle").mkdir()
        return "class folder circle in shapes holds no images"
    if how == "a cut-short PNG":
        png = folder / "bar" / "01.png"
        png.write_bytes(png.read_bytes()[:-20])
        return "bar/01.png is a PNG cut short"
    (folder / "bar" / "07.png").write_bytes(b"\x00\x05\x16\x07" + bytes(60))
    return "bar/07.png is not a PNG, JPEG, GIF or BMP image"


def test_init_skips_the_hidden_files_macos_leaves(tmp_path, shapes):
    import shutil

    folder = shutil.copytree(shapes, tmp_path / "shapes")
    (folder / "bar" / "._01.png").write_bytes(b"\x00\x05\x16\x07" + bytes(60))
    assert cli("init", folder) == 0
    assert "8 images" in (tmp_path / "shapes.yaml").read_text()


@pytest.mark.parametrize("how", ["an empty class folder", "a cut-short PNG",
                                 "not an image"])
def test_init_says_when_the_config_it_wrote_fails_validation(tmp_path, capsys, shapes, how):
    import shutil

    folder = shutil.copytree(shapes, tmp_path / "shapes")
    expected = _spoil(folder, how)
    assert cli("init", folder) == 2
    err = capsys.readouterr().err
    assert "wrote " in err and "shapes.yaml, but it does not validate because of the data" in err
    assert expected in err and "Traceback" not in err
    # The file stays, for the user to fix the data (or edit it) and validate again.
    assert (tmp_path / "shapes.yaml").exists()
    assert cli("validate", tmp_path / "shapes.yaml") == 2


# ---------------------------------------------------------------- what the data names

HOSTILE = ["a\nmodel: {factory: os.system}", "#comment", "it's \"quoted\"", "key: value",
           "!!python/object/apply:os.system ['touch pwned']", "café", "日本語", "🙂 emoji",
           "- dash", "[1, 2]", "{a: 1}", "&anchor", "*alias", "| block", "@at", "`tick`",
           "yes", "null", "1e3", "tab\there", "line\u2028sep"]


def test_hostile_names_in_a_table_stay_names_from_init_to_the_runs_vocabulary(tmp_path):
    """Column names, label values and category values that hold YAML, line breaks, tags
    and non-ASCII text reach the config as strings and come back the same in the run."""
    import yaml

    rng = np.random.default_rng(0)
    labels = [HOSTILE[0], HOSTILE[4], HOSTILE[6]]
    rows = []
    for i in range(90):
        row = {name: round(float(rng.normal()), 3) for name in HOSTILE[1:8]}
        row[HOSTILE[8]] = HOSTILE[9 + i % 8]  # a category whose values are hostile too
        row[HOSTILE[0]] = labels[i % 3]
        rows.append(row)
    data = write_csv(tmp_path / "hostile.csv", rows)
    assert cli("init", data, "--label", HOSTILE[0]) == 0
    text = (tmp_path / "hostile.yaml").read_text()
    config = yaml.safe_load(text)  # YAML that parses
    assert config["data"]["label"] == HOSTILE[0]
    # The label became a name, not a `factory:` model; nothing ran.
    assert set(config["model"]) == {"inputs", "layers", "outputs"}
    assert cli("validate", tmp_path / "hostile.yaml") == 0
    record = trains(tmp_path / "hostile.yaml", tmp_path / "runs")
    run = only_run(tmp_path / "runs")
    table = json.loads((run / "data" / "table.json").read_text())
    assert table["labels"] == [HOSTILE[0]]
    assert table["classes"][HOSTILE[0]] == sorted(labels)
    columns = [c for cols in table["features"].values() for c in cols]
    assert sorted(columns) == sorted(HOSTILE[1:9])
    assert not (tmp_path / "pwned").exists() and record["status"] in (
        "completed", "stopped_early")
    import keras

    model = keras.saving.load_model(run / "model.keras")
    lookup = next(layer for layer in model.layers if "StringLookup" in type(layer).__name__)
    assert sorted(lookup.get_vocabulary()[1:]) == sorted(HOSTILE[9:17])


def test_hostile_class_folder_names_are_written_as_comments_only(tmp_path):
    """A folder name can hold bytes that are not UTF-8 (a lone surrogate in Python) and
    YAML; the config still parses, validates and trains, and classes.json keeps the
    names."""
    import yaml

    root = tmp_path / "pics"
    write_images(root, per_class=4)
    odd = os.fsdecode(b"sq\xffuare\n#x: !!python:name:os.system \x1b[31m")
    os.rename(root / "square", root / odd)
    assert cli("init", root) == 0
    text = (tmp_path / "pics.yaml").read_text(encoding="utf-8")
    assert yaml.safe_load(text)["data"]["path"] == "pics"
    assert "\\udcff" in text and "\\n#x" in text and "\\x1b" in text  # escaped, in a comment
    run = trains(tmp_path / "pics.yaml", tmp_path / "runs")
    classes = json.loads((only_run(tmp_path / "runs") / "data" / "classes.json").read_text())
    assert classes == ["bar", odd] and run["status"] in ("completed", "stopped_early")


@pytest.mark.parametrize("name", ["café.csv", "🙂.csv", "données 2024.csv", "2024.csv"])
def test_init_on_files_named_in_any_script_writes_a_config_that_validates(tmp_path, name):
    data = write_csv(tmp_path / name, table_rows(30))
    assert cli("init", data) == 0
    (config,) = [p for p in tmp_path.glob("*.yaml")]
    assert cli("validate", config) == 0


def test_init_dot_and_a_fifo(tmp_path, capsys):
    shapes = write_images(tmp_path / "flowers", per_class=3)
    os.chdir(shapes)
    assert cli("init", ".", "-o", tmp_path / "here.yaml") == 0
    assert cli("validate", tmp_path / "here.yaml") == 0
    os.chdir(tmp_path)
    assert cli("init", shapes / ".") == 0 and (tmp_path / "flowers.yaml").exists()
    os.mkfifo(tmp_path / "pipe.csv")
    result = cli_output(capsys, "init", tmp_path / "pipe.csv")  # must not block
    assert result.code == 2 and "is not a regular file or a folder" in result.err


# ---------------------------------------------------------------- the layouts people use

def test_init_writes_into_the_current_folder_and_says_so(tmp_path, capsys):
    data = make("csv", tmp_path / "data" / "deep")
    (tmp_path / "work").mkdir()
    os.chdir(tmp_path / "work")
    result = cli_output(capsys, "init", data)
    assert result.code == 0 and result.out.startswith("wrote animals.yaml (a csv table")
    assert "path: ../data/deep/animals.csv" in (tmp_path / "work" / "animals.yaml").read_text()
    images = write_images(tmp_path / "data" / "shapes", per_class=3)
    assert cli_output(capsys, "init", images).out.startswith("wrote shapes.yaml")
    assert not list((tmp_path / "data").glob("*.yaml"))  # nothing written beside the data


def test_init_on_a_training_folder_uses_its_val_and_test_siblings(tmp_path):
    import yaml

    for split, seed in (("train", 0), ("val", 1), ("test", 2)):
        write_images(tmp_path / "ds" / split, per_class=3, seed=seed)
    assert cli("init", tmp_path / "ds" / "train") == 0
    config = yaml.safe_load((tmp_path / "ds.yaml").read_text())["data"]
    assert (config["path"], config["validation_path"], config["test_path"]) == (
        "ds/train", "ds/val", "ds/test")
    assert "validation_split" not in config
    for split in ("train", "validation", "test"):
        write_csv(tmp_path / "tables" / f"{split}.csv", table_rows(30, seed=len(split)))
    assert cli("init", tmp_path / "tables" / "train.csv") == 0
    config = yaml.safe_load((tmp_path / "tables.yaml").read_text())["data"]
    assert (config["path"], config["validation_path"], config["test_path"]) == (
        "tables/train.csv", "tables/validation.csv", "tables/test.csv")
    assert cli("validate", tmp_path / "tables.yaml") == 0


def test_grey_images_get_a_grayscale_config(tmp_path):
    import yaml
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, name in enumerate(["dark", "light"]):
        (tmp_path / "grey" / name).mkdir(parents=True)
        for i in range(4):
            pixels = (rng.random((10, 14)) * 60 + 150 * c).astype(np.uint8)
            Image.fromarray(pixels, "L").save(tmp_path / "grey" / name / f"{i}.png")
            Image.fromarray(pixels, "L").save(tmp_path / "grey" / name / f"{i}.jpg")
    assert cli("init", tmp_path / "grey") == 0
    config = yaml.safe_load((tmp_path / "grey.yaml").read_text())
    assert config["data"]["color_mode"] == "grayscale"
    assert config["data"]["image_size"] == [10, 14]
    assert config["model"]["input_shape"] == [10, 14, 1]
    assert trains(tmp_path / "grey.yaml", tmp_path / "runs")["status"] in (
        "completed", "stopped_early")


def test_integer_labels_from_one_or_with_gaps_get_an_output_per_id(tmp_path):
    """A class id is an output's index: labels 1..3 need 4 outputs, 0, 2, 5 six."""
    import yaml

    rng = np.random.default_rng(0)
    for name, ids in (("from_one", [1, 2, 3]), ("gaps", [0, 2, 5])):
        rows = [{"a": round(float(rng.normal()), 3), "b": round(float(rng.normal()), 3),
                 "label": ids[i % 3]} for i in range(60)]
        assert cli("init", write_csv(tmp_path / f"{name}.csv", rows)) == 0
        config = yaml.safe_load((tmp_path / f"{name}.yaml").read_text())
        assert config["model"]["layers"][-1]["units"] == max(ids) + 1
        assert trains(tmp_path / f"{name}.yaml", tmp_path / f"runs-{name}")["status"] in (
            "completed", "stopped_early")


def test_a_label_sorted_table_gets_a_stratified_split(tmp_path, capsys):
    rows = sorted(table_rows(90), key=lambda r: r["species"])
    data = write_csv(tmp_path / "sorted.csv", rows)
    assert cli("init", data) == 0
    assert "split: stratified" in (tmp_path / "sorted.yaml").read_text()
    result = cli_output(capsys, "validate", tmp_path / "sorted.yaml")
    assert result.code == 0 and "lacks" not in result.out
