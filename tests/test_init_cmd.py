"""`cbrun init DATA` writes a commented config that validates and trains as it is."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, cli, only_run
from datafiles import review_rows, table_rows, write_csv, write_images, write_parquet


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
    output = tmp_path / "configs" / "start.yaml"
    output.parent.mkdir()
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
    assert "label: species          # the target: 3 classes" in text
    assert "features: [height_mm, weight_g, colour]" in text
    assert "{type: Normalization, adapt: true}" in text


def test_init_reads_free_text_as_text_and_categories_as_categories(tmp_path):
    data = make("text", tmp_path)
    assert cli("init", data) == 0
    text = (tmp_path / "reviews.yaml").read_text()
    assert 'text: ["Review text"]' in text
    assert 'Review_text: ["Review text"]' in text
    assert 'numbers: [stars, "length (chars)"]' in text
    assert "type: TextVectorization, adapt: true" in text


def test_init_takes_a_regression_label_and_refuses_an_unknown_one(tmp_path, capsys):
    data = make("csv", tmp_path)
    assert cli("init", data, "--label", "weight_g") == 0
    text = (tmp_path / "animals.yaml").read_text()
    assert "loss: mse" in text and "units: 1" in text
    capsys.readouterr()
    assert cli("init", data, "--label", "wieght_g", "--force") == 2
    assert "no column 'wieght_g' (did you mean 'weight_g'?)" in capsys.readouterr().err


def test_init_does_not_overwrite_and_does_not_import_tensorflow(tmp_path):
    data = make("npz", tmp_path)
    code = ("import sys; from cbrun.cli import main\n"
            f"for _ in range(2):\n    try:\n        main(['init', {str(data)!r}])\n"
            "    except SystemExit as e:\n        print('EXIT', e.code)\n"
            "print('HEAVY', [m for m in ('tensorflow', 'keras') if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert "EXIT 0\nEXIT 2\nHEAVY []" in result.stdout
    assert "arrays.yaml exists" in result.stderr
