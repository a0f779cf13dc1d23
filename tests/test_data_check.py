"""`cbrun data check`: a report on a config's data, or on a data file or folder, without
TensorFlow. Each planted problem (rows shared by training and validation, a constant
column, a class the validation split lacks, a corrupt image) is named, by row, column,
class or file; the splits are the rows the run draws."""

from __future__ import annotations

import json
import zlib

import numpy as np
import pytest
from conftest import cli_output, tiny_config, write_config
from datafiles import table_rows, write_csv, write_parquet
from test_splits import sorted_rows, table_config

from cbrun.data.splits import draw
from tests.helpers.light import run_cbrun


def warnings_of(out: str) -> list[str]:
    return [line[len("warning: "):] for line in out.splitlines() if line.startswith("warning: ")]


def animals_config(folder, **data):
    section = {"source": "csv", "path": "animals.csv", "label": "species",
               "validation_split": 0.25, **data}
    return write_config(folder, tiny_config(
        name="animals", data=section,
        model={"input_shape": [4], "layers": [{"type": "Dense", "units": 3,
                                               "activation": "softmax"}]}))


def planted_rows(seed: int = 7):
    """150 animals, a constant `site`, and two planted copies: a validation row that is a
    training row, and a training row that repeats another; (rows, validation row, its
    training twin, the repeated training row, its first copy), 0-based."""
    rows = table_rows(150)
    for row in rows:
        row["site"] = "north"
    labels = np.array([r["species"] for r in rows], dtype=object)
    cut = draw(len(rows), 0.25, 0.0, "auto", seed, labels)
    validation, train = cut.validation.tolist(), cut.train.tolist()
    leaked = validation[3]
    twin = next(i for i in train if rows[i]["species"] == rows[leaked]["species"])
    rows[leaked] = dict(rows[twin])  # same label: the stratified draw does not move
    copy, original = train[-1], train[5]
    species = rows[copy]["species"]
    original = next(i for i in train[5:] if rows[i]["species"] == species and i != copy)
    rows[copy] = dict(rows[original])
    return rows, leaked, twin, copy, original


def test_rows_shared_by_training_and_validation_are_named_by_their_lines(tmp_path, capsys):
    rows, leaked, twin, copy, original = planted_rows()
    write_csv(tmp_path / "animals.csv", rows)
    config = animals_config(tmp_path)
    result = cli_output(capsys, "data", "check", config)
    assert result.code == 0, result.err  # a report: warnings are not failures
    found = warnings_of(result.out)
    # CSV lines: the header is line 1, row i is line i + 2.
    leak = next(w for w in found if "also a training row" in w)
    assert leak.startswith("1 of the 38 validation rows (3%) is also a training row "
                           f"(validation line {leaked + 2} = train line {twin + 2})"), leak
    repeat = next(w for w in found if "repeats an earlier train row" in w)
    assert (f"line {min(copy, original) + 2} = line {max(copy, original) + 2}") in repeat
    doc = json.loads(cli_output(capsys, "data", "check", config, "--json").out)
    across = doc["duplicates"]["across"]["validation"]
    assert across["rows"] == 1 and across["of"] == 38
    assert across["examples"][0]["row"]["line"] == leaked + 2
    assert across["examples"][0]["train"]["line"] == twin + 2
    assert doc["duplicates"]["within"]["train"]["rows"] == 1


def test_the_split_is_the_runs_own_draw_with_the_configs_seed(tmp_path, capsys):
    """Rows planted for seed 8's draw: the report finds them with the config's seed set to
    8, and only then (seed 7, the config's own, and 42, the default, hold that row in
    training)."""
    rows, leaked, twin, *_ = planted_rows(seed=8)
    write_csv(tmp_path / "animals.csv", rows)
    config = animals_config(tmp_path)
    labels = np.array([r["species"] for r in rows], dtype=object)
    for seed in (7, 42):
        assert leaked not in draw(len(rows), 0.25, 0.0, "auto", seed, labels).validation

    def leaks(*args):
        doc = json.loads(cli_output(capsys, "data", "check", config, "--json", *args).out)
        return doc, [(e["row"]["line"], e["train"]["line"])
                     for e in doc["duplicates"]["across"]["validation"]["examples"]]

    doc, found = leaks("--set", "seed=8")
    assert found == [(leaked + 2, twin + 2)]
    assert doc["seed"] == 8 and doc["split"]["method"] == "stratified"
    assert (leaked + 2, twin + 2) not in leaks()[1]


def test_a_constant_feature_is_named_and_an_unused_one_is_not(tmp_path, capsys):
    rows, *_ = planted_rows()
    write_csv(tmp_path / "animals.csv", rows)
    result = cli_output(capsys, "data", "check", animals_config(tmp_path))
    constant = [w for w in warnings_of(result.out) if "holds one value" in w]
    assert constant == [("column 'site' holds one value ('north') in every row: it tells the "
                         "model nothing; leave it out of features")]
    # Left out of the features, it is no longer the model's problem.
    config = animals_config(tmp_path, features=["height_mm", "weight_g", "colour"])
    doc = json.loads(cli_output(capsys, "data", "check", config, "--json").out)
    site = next(c for c in doc["columns"] if c["name"] == "site")
    assert site["constant"] is True and site["use"] == "unused"
    assert not [f for f in doc["findings"] if f["kind"] == "constant"]


def test_a_class_missing_from_validation_is_named(tmp_path, capsys):
    write_csv(tmp_path / "cells.csv", sorted_rows())
    config = write_config(tmp_path, table_config("tail"))
    result = cli_output(capsys, "data", "check", config)
    assert result.code == 0
    found = warnings_of(result.out)
    assert ("the validation split lacks 1 of the 2 classes training has ('benign'): its "
            "metrics say nothing about it") in found
    assert any("sorted by their label" in w and "split: tail" in w for w in found)
    doc = json.loads(cli_output(capsys, "data", "check", config, "--json").out)
    label = doc["labels"][0]
    assert label["classes"] == ["benign", "malignant"]
    assert label["counts"] == {"train": [120, 24], "validation": [0, 36]}
    # With the default split, every class is in validation and nothing is said about it.
    stratified = write_config(tmp_path, table_config(), "stratified.yaml")
    doc = json.loads(cli_output(capsys, "data", "check", stratified, "--json").out)
    assert doc["labels"][0]["counts"]["validation"] == [24, 12]
    assert not [f for f in doc["findings"] if "lacks" in f["message"]]


def test_a_class_only_the_validation_file_has_is_named(tmp_path, capsys):
    write_csv(tmp_path / "train.csv", sorted_rows())
    write_csv(tmp_path / "val.csv", [{"radius": 1.0, "texture": 2.0, "diagnosis": "cyst"}])
    config = table_config(None, path="train.csv", validation_path="val.csv")
    del config["data"]["validation_split"]
    result = cli_output(capsys, "data", "check", write_config(tmp_path, config))
    assert ("the validation split has 1 class of 'diagnosis' that training lacks ('cyst'): "
            "the model has no output for it") in warnings_of(result.out)


def png(path, size=(8, 8), grey=False):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(zlib.crc32(str(path).encode()))  # each file its own pixels
    shape = size if grey else (*size, 3)
    Image.fromarray((rng.random(shape) * 255).astype(np.uint8)).save(path)
    return path


def image_folder(root):
    for name in ("cat", "dog"):
        for i in range(6):
            png(root / name / f"{i}.png")
    broken = root / "dog" / "3.png"
    broken.write_bytes(broken.read_bytes()[:-20])
    png(root / "cat" / "wide.png", size=(8, 12), grey=True)
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / "dog" / ".DS_Store").write_bytes(b"\0")
    return broken


def test_a_corrupt_image_is_named_and_skipped_files_counted(tmp_path, capsys):
    broken = image_folder(tmp_path / "shapes")
    result = cli_output(capsys, "data", "check", tmp_path / "shapes")
    assert result.code == 0, result.err
    assert (f"{broken} is a PNG cut short (no IEND chunk at its end); remove or replace it "
            "(a run stops on it)") in warnings_of(result.out)
    assert "1 hidden; 1 not images (cat/notes.txt)" in result.out
    doc = json.loads(cli_output(capsys, "data", "check", tmp_path / "shapes", "--json").out)
    images = doc["images"]
    assert images["corrupt"] == [{"split": "train", "file": str(broken),
                                  "problem": "a PNG cut short (no IEND chunk at its end)"}]
    assert images["sizes"] == [{"height": 8, "width": 8, "count": 11},
                               {"height": 8, "width": 12, "count": 1}]
    assert images["channels"] == {"1": 1, "3": 11}
    assert doc["labels"][0]["counts"] == {"train": [7, 6]}


def test_an_image_config_splits_as_its_run_and_finds_the_same_file_twice(tmp_path, capsys):
    from cbrun.config.data.images import ImagesData

    image_folder(tmp_path / "shapes")
    same = tmp_path / "shapes" / "dog" / "copy.png"
    same.write_bytes((tmp_path / "shapes" / "cat" / "0.png").read_bytes())
    section = {"source": "images", "path": "shapes", "image_size": [8, 8],
               "validation_split": 0.3}
    config = write_config(tmp_path, tiny_config(
        data=section, model={"input_shape": [8, 8, 3], "layers": [
            {"type": "Flatten"}, {"type": "Dense", "units": 2, "activation": "softmax"}]}))
    doc = json.loads(cli_output(capsys, "data", "check", config, "--json").out)
    labels, _ = ImagesData.model_validate(section).split_labels(tmp_path, seed=7)
    for split in ("train", "validation"):
        expected = [int(np.sum(labels[split] == c)) for c in ("cat", "dog")]
        assert doc["labels"][0]["counts"][split] == expected
    assert any(f["kind"] == "conflict" and str(same) in f["message"] for f in doc["findings"])


def test_the_json_document_holds_the_whole_report(tmp_path, capsys):
    rows, *_ = planted_rows()
    write_parquet(tmp_path / "animals.parquet", rows)
    result = cli_output(capsys, "data", "check", tmp_path / "animals.parquet", "--json",
                        "--label", "species", "--validation-split", "0.2")
    doc = json.loads(result.out)
    assert {"ok", "target", "source", "kind", "rows", "split", "columns", "labels",
            "duplicates", "findings"} <= set(doc)
    assert doc["source"] == "parquet" and doc["rows"] == {"train": 120, "validation": 30}
    kinds = {c["name"]: c["kind"] for c in doc["columns"]}
    assert kinds == {"height_mm": "number", "weight_g": "number", "colour": "category",
                     "species": "category", "site": "category"}
    height = next(c for c in doc["columns"] if c["name"] == "height_mm")
    assert height["min"] == min(r["height_mm"] for r in rows)
    assert all({"kind", "message"} <= set(f) for f in doc["findings"])
    # Parquet has no header line: rows are named by their 1-based row number.
    example = doc["duplicates"]["within"]["train"]["examples"][0][0]
    assert example["line"] is None and example["row"] >= 1


def test_conflicting_labels_and_missing_values_are_named(tmp_path, capsys):
    rows = [{"a": i % 5, "b": "x", "y": "p"} for i in range(30)]
    rows[7] = {"a": 2, "b": "x", "y": "q"}  # row 2 has these features with label p
    rows[11]["a"] = ""
    write_csv(tmp_path / "t.csv", rows)
    result = cli_output(capsys, "data", "check", tmp_path / "t.csv", "--label", "y")
    found = warnings_of(result.out)
    assert any(w.startswith("column 'a' has 1 missing value (train line 13)") for w in found)
    conflict = next(w for w in found if "another label" in w)
    assert "train line 4 ('p') vs train line 9 ('q')" in conflict


def test_arrays_are_reported_with_their_classes(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)).astype("float32")
    x[30] = x[2]
    np.savez(tmp_path / "a.npz", x=x, y=np.arange(40) % 2)
    doc = json.loads(cli_output(capsys, "data", "check", tmp_path / "a.npz", "--json").out)
    assert doc["labels"][0]["counts"] == {"train": [20, 20]}
    assert [a["shape"] for a in doc["arrays"]] == [[40, 3], [40]]
    assert doc["duplicates"]["within"]["train"]["rows"] == 1
    digits = write_config(tmp_path, tiny_config(), "digits.yaml")
    doc = json.loads(cli_output(capsys, "data", "check", digits, "--json").out)
    assert doc["rows"] == {"train": 1437, "validation": 360}  # Keras's arithmetic
    assert len(doc["labels"][0]["classes"]) == 10


def test_a_config_error_exits_2_with_the_line_validate_gives(tmp_path, capsys):
    write_csv(tmp_path / "animals.csv", table_rows(20))
    config = animals_config(tmp_path, label="specie")
    result = cli_output(capsys, "data", "check", config)
    assert result.code == 2 and result.out == ""
    validate = cli_output(capsys, "validate", config)
    problem = next(line for line in validate.out.splitlines() if "data.label" in line)
    assert problem.startswith(f"{config}:") and "did you mean 'species'" in problem
    assert result.err == f"error: config error (1 problem):\n{problem}\n"
    doc = json.loads(cli_output(capsys, "data", "check", config, "--json").out)
    assert doc["ok"] is False and "did you mean 'species'" in doc["problems"][0]["message"]
    bad = animals_config(tmp_path, validation_split=2)
    result = cli_output(capsys, "data", "check", bad)
    assert result.code == 2 and "data.validation_split" in result.err


@pytest.mark.parametrize("name, content", [
    ("t.parquet", b"these are not parquet bytes"),
    ("t.csv", bytes(range(256)) * 40),
    ("t.npz", b"PK not a zip"),
])
def test_a_file_that_is_not_data_is_one_line(tmp_path, capsys, name, content):
    (tmp_path / name).write_bytes(content)
    result = cli_output(capsys, "data", "check", tmp_path / name)
    assert result.code == 2 and result.out == ""
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {tmp_path / name} is not"), lines


def test_options_that_do_not_fit_the_target_are_usage_errors(tmp_path, capsys):
    write_csv(tmp_path / "animals.csv", table_rows(20))
    config = animals_config(tmp_path)
    for args in ((config, "--label", "colour"), (tmp_path / "animals.csv", "--set", "seed=1"),
                 (tmp_path / "notes.txt",), (tmp_path / "animals.csv", "--label", "nope")):
        result = cli_output(capsys, "data", "check", *args)
        assert result.code == 2 and len(result.err.strip().splitlines()) == 1, result.err


def test_data_check_does_not_import_tensorflow(tmp_path):
    rows, *_ = planted_rows()
    write_csv(tmp_path / "animals.csv", rows)
    image_folder(tmp_path / "shapes")
    result = run_cbrun(["data", "check", animals_config(tmp_path)],
                       ["data", "check", "--json", tmp_path / "shapes"],
                       ["data", "check", tmp_path / "animals.csv", "--label", "species"])
    assert result.codes == [0, 0, 0], result.commands
    assert result.heavy == []


def test_the_docs_example_is_the_real_output(tmp_path, capsys, monkeypatch):
    import re

    from conftest import REPO

    page = (REPO / "docs" / "data.md").read_text()
    section = page[page.index("## Checking the data"):]
    config, shown = re.search(r"```yaml\n(.*?)```\n\n```\n\$ cbrun data check cells.yaml\n"
                              r"(.*?)```", section, re.DOTALL).groups()
    rows = sorted_rows()
    for row in rows:
        row["clinic"] = "north"
    rows[170] = dict(rows[130])  # a malignant training row, again among the last rows
    write_csv(tmp_path / "cells.csv", [{k: r[k] for k in ("radius", "texture", "clinic",
                                                          "diagnosis")} for r in rows])
    (tmp_path / "cells.yaml").write_text(config)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "100")
    result = cli_output(capsys, "data", "check", "cells.yaml")
    assert result.code == 0 and result.out == shown


def test_text_classes_are_counted_as_numpy_counts_them():
    """Text labels are counted by pyarrow (np.unique sorts Python strings one comparison at
    a time): the classes, their order and each row's code are np.unique's."""
    from cbrun.data.splits import class_codes, uniques

    rng = np.random.default_rng(3)
    alphabet = np.array(["a", "B", "é", "\x00", "😀", "ß", "\uffff", "中", " ", ""])
    for _ in range(50):
        values = np.array(["".join(rng.choice(alphabet, size=rng.integers(0, 4)))
                           for _ in range(rng.integers(1, 80))], dtype=object)
        found, codes, counts = uniques(values)
        expected = np.unique(values, return_inverse=True, return_counts=True)
        assert found.tolist() == expected[0].tolist()
        assert codes.tolist() == expected[1].tolist() == class_codes(values).tolist()
        assert counts.tolist() == expected[2].tolist()
    # A string pyarrow cannot hold (a lone surrogate) is counted by numpy; None is no class.
    assert class_codes(np.array(["b", "\udcff", "a"], dtype=object)).tolist() == [1, 2, 0]
    assert class_codes(np.array(["b", None], dtype=object)) is None


def test_rows_are_equal_exactly_where_their_values_are():
    import pyarrow as pa

    from cbrun.data import rowkeys

    table = pa.table({"x": [0.0, -0.0, float("nan"), float("nan"), None, 0.0, 1.0],
                      "s": ["a", "a", "b", "b", None, None, "a"],
                      "i": [1, 1, 2, 2, 0, 0, 1]})
    first = rowkeys.confirm(table, table.column_names,
                            rowkeys.groups(rowkeys.row_hashes(table, table.column_names)))
    # 0.0 is -0.0, NaN is NaN, a missing value is no number and no text.
    assert first.tolist() == [0, 0, 2, 2, 4, 5, 6]
    # Two rows that share a hash but not their values (a collision) stay apart.
    forged = np.array([0, 0, 0, 3, 4, 5, 6])
    assert rowkeys.confirm(table, table.column_names, forged).tolist() == [0, 0, 2, 3, 4, 5, 6]


def test_one_class_and_two_columns_of_one_name_are_said(tmp_path, capsys):
    write_csv(tmp_path / "one.csv", [{"x": i, "y": "cat"} for i in range(10)])
    result = cli_output(capsys, "data", "check", tmp_path / "one.csv", "--label", "y")
    assert ("the training rows of 'y' hold one class ('cat'): there is nothing to tell apart"
            in warnings_of(result.out))
    (tmp_path / "twice.csv").write_text("a,b,a,y\n1,2,3,p\n4,5,6,q\n")
    result = cli_output(capsys, "data", "check", tmp_path / "twice.csv")
    assert result.code == 2
    assert result.err == (f"error: {tmp_path / 'twice.csv'} has 2 columns named 'a' (columns "
                          "1, 3); give each column a name of its own\n")
    # In a config, the same words at the line of data.path, from validate too (which
    # stopped on pyarrow's KeyError before).
    config = write_config(tmp_path, tiny_config(
        data={"source": "csv", "path": "twice.csv", "label": "y"},
        model={"input_shape": [3], "layers": [{"type": "Dense", "units": 2,
                                               "activation": "softmax"}]}))
    for command in ("validate", "data check"):
        result = cli_output(capsys, *command.split(), config)
        assert result.code == 2
        assert ("data.path: twice.csv has 2 columns named 'a' (columns 1, 3); give each "
                "column a name of its own") in result.out + result.err
