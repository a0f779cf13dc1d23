"""Held-out rows that represent the data: stratified and random splits drawn from the seed,
Keras's tail cut on request, and the warnings when a split does not represent training."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import cli, cli_output, only_run, tiny_config, write_config
from datafiles import write_csv

from cbrun.data.splits import draw


def sorted_rows(n_benign: int = 120, n_malignant: int = 60, seed: int = 0) -> list[dict]:
    """A table sorted by its label, as files exported from a database often are."""
    rng = np.random.default_rng(seed)
    rows = []
    for label, count, centre in (("benign", n_benign, 0.0), ("malignant", n_malignant, 2.0)):
        for _ in range(count):
            rows.append({"radius": round(float(rng.normal(centre, 1)), 3),
                         "texture": round(float(rng.normal(-centre, 1)), 3),
                         "diagnosis": label})
    return rows


def table_config(split: str | None = None, **data) -> dict:
    section = {"source": "csv", "path": "cells.csv", "label": "diagnosis",
               "validation_split": 0.2, "batch_size": 16, **data}
    if split is not None:
        section["split"] = split
    return tiny_config(
        name="cells", data=section,
        model={"input_shape": [2], "layers": [{"type": "Dense", "units": 2,
                                               "activation": "softmax"}]},
        fit={"epochs": 1})


@pytest.mark.parametrize("method", ["stratified", "random", "tail"])
def test_a_split_is_a_pure_function_of_the_seed_and_keeps_kerass_sizes(method):
    labels = np.repeat([0, 1, 2], [50, 30, 20])
    first = draw(100, 0.2, 0.1, method, 7, labels)
    again = draw(100, 0.2, 0.1, method, 7, labels)
    other = draw(100, 0.2, 0.1, method, 8, labels)
    for part in ("train", "validation", "test"):
        np.testing.assert_array_equal(getattr(first, part), getattr(again, part))
    # Keras's arithmetic: 10 test rows, then 18 of the 90 left for validation.
    assert (len(first.train), len(first.validation), len(first.test)) == (72, 18, 10)
    rows = np.concatenate([first.train, first.validation, first.test])
    assert sorted(rows.tolist()) == list(range(100))  # each row in one split
    assert all(np.all(np.diff(getattr(first, p)) > 0) for p in ("train", "validation"))
    if method == "tail":
        assert first.validation.tolist() == list(range(72, 90))
        assert first.test.tolist() == list(range(90, 100))
    else:
        assert not np.array_equal(first.validation, other.validation)


def test_a_stratified_split_gives_every_class_its_share_to_within_a_row():
    labels = np.repeat(["a", "b", "c", "d"], [500, 300, 150, 50])
    cut = draw(1000, 0.2, 0.1, "auto", 3, labels)
    assert cut.method == "stratified" and cut.sorted_rows
    for part, size in (("validation", 180), ("test", 100)):
        rows = getattr(cut, part)
        assert len(rows) == size
        counts = {c: int(np.sum(labels[rows] == c)) for c in "abcd"}
        for c, share in zip("abcd", (0.5, 0.3, 0.15, 0.05), strict=True):
            assert abs(counts[c] - share * size) <= 1, (part, counts)


def test_auto_draws_numbers_at_random_and_classes_by_class():
    numbers = np.linspace(25, 346, 200)
    assert draw(200, 0.2, 0, "auto", 1, numbers).method == "random"
    assert draw(200, 0.2, 0, "auto", 1, np.arange(200) % 3).method == "stratified"
    # Integers with more values than a classifier would have are numbers too.
    assert draw(200, 0.2, 0, "auto", 1, np.arange(200)).method == "random"


def test_a_label_sorted_csv_validates_on_every_class_in_its_share(tmp_path, capsys):
    write_csv(tmp_path / "cells.csv", sorted_rows())
    path = write_config(tmp_path, table_config())
    result = cli_output(capsys, "validate", path)
    assert result.code == 0
    # Sorted, but harmless: said in one line, no warning about the validation split.
    assert "sorted by their label" in result.out and "lacks" not in result.out
    assert cli("train", path, "--runs-dir", tmp_path / "runs", "-q") == 0
    run = only_run(tmp_path / "runs")
    split = json.loads((run / "data" / "split.json").read_text())
    assert split == {"method": "stratified", "sorted_by_label": True,
                     "rows": {"train": 144, "validation": 36, "test": 0}}
    from cbrun.config.data.csv import CsvData
    from cbrun.engine.sources import load_splits

    cfg = CsvData.model_validate(table_config()["data"])
    splits = load_splits(cfg, tmp_path, seed=7)
    counts = np.bincount(splits.validation.y, minlength=2)
    assert counts.tolist() == [24, 12]  # 120:60 in the file, 2:1 here


def test_tail_on_a_sorted_csv_warns_at_validate_and_at_the_runs_start(tmp_path, capsys):
    write_csv(tmp_path / "cells.csv", sorted_rows())
    path = write_config(tmp_path, table_config("tail"))
    result = cli_output(capsys, "validate", path)
    assert result.code == 0  # a warning, not a refusal: tail is what the user asked for
    warnings = [line for line in result.out.splitlines() if "warning:" in line]
    assert len(warnings) == 2, result.out
    assert "split: tail holds out the last rows" in warnings[0]
    assert "the validation split lacks 1 of the 2 classes training has ('benign')" \
        in warnings[1]
    run = cli_output(capsys, "train", path, "--runs-dir", tmp_path / "runs", "-q")
    assert run.code == 0
    assert "warning: data: the validation split lacks 1 of the 2 classes training has " \
           "('benign')" in run.err
    # --json carries them too.
    doc = json.loads(cli_output(capsys, "validate", path, "--json").out)
    assert len(doc["files"][0]["warnings"]) == 2


def test_shares_far_from_trainings_and_stratified_on_numbers_are_said(tmp_path, capsys):
    rows = sorted_rows(150, 50)
    # The last fifth: 10 benign, 40 malignant; training: 140 benign, 10 malignant.
    rows = rows[:140] + rows[150:160] + rows[140:150] + rows[160:]
    write_csv(tmp_path / "cells.csv", rows)
    path = write_config(tmp_path, table_config("tail", validation_split=0.25))
    out = cli_output(capsys, "validate", path).out
    assert ("the validation split's class shares differ from training's: class 'benign' is "
            "20% of validation and 93% of training") in out
    config = table_config("stratified")
    config["data"]["label"] = "radius"
    config["compile"]["loss"] = "mse"
    config["compile"]["metrics"] = ["mae"]
    config["model"]["layers"][0] = {"type": "Dense", "units": 1}
    write_csv(tmp_path / "cells.csv", sorted_rows())
    out = cli_output(capsys, "validate", write_config(tmp_path, config)).out
    assert "split: stratified needs a target of classes" in out


def test_an_image_folder_draws_each_class_and_tail_keeps_the_last_files(tmp_path):
    from datafiles import write_images

    from cbrun.config.data.images import ImagesData
    from cbrun.engine.sources import load_splits

    write_images(tmp_path / "shapes", per_class=10)
    names = {}
    for split in ("tail", "auto"):
        cfg = ImagesData(source="images", path="shapes", image_size=[8, 8],
                         validation_split=0.2, split=split)
        splits = load_splits(cfg, tmp_path, seed=3)
        assert np.bincount(splits.validation.y).tolist() == [2, 2]
        names[split] = [p.split("/")[-1] for p in splits.validation.x.paths]
    assert names["tail"] == ["08.jpg", "09.png", "08.jpg", "09.png"]
    assert names["auto"] != names["tail"]


def test_a_run_without_split_in_its_resolved_yaml_reads_the_rows_it_trained_on(tmp_path):
    """Runs of cbrun before `split` existed cut the last rows; their resolved.yaml, read
    today, still means that."""
    import yaml

    from cbrun.config.load import load_config

    config = table_config()  # no `split:` key
    path = tmp_path / "resolved.yaml"
    path.write_text(yaml.safe_dump(config))
    assert load_config(path, resolved=True).config.data.split == "tail"
    assert load_config(path).config.data.split == "auto"
