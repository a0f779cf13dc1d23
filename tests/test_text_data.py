"""Raw text and categories learned by preprocessing layers (`adapt: true`): TextVectorization
on review text from an npz or a table's `text:` column, StringLookup and IntegerLookup on
categories, and the mistakes around them found before training."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import cli, cli_output, only_run, read_log, write_config
from datafiles import REVIEWS_DATA, review_rows, text_graph_config, write_csv


def _text_stack(name: str, data: dict, first: dict, units: int, **model) -> dict:
    return {"name": name, "seed": 2, "data": data,
            "model": {"input_shape": [1], "layers": [first, *model.pop("middle", []), {
                "type": "Dense", "units": units, "activation": "softmax"}], **model},
            "compile": {"optimizer": {"type": "Adam", "learning_rate": 0.05},
                        "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
            "fit": {"epochs": 3}}


def train_reviews_npz(folder, rows: list[dict]):
    """A run of reviews as raw strings (an npz) through an adapted TextVectorization."""
    np.savez(folder / "reviews.npz", x=np.array([[r["review"]] for r in rows]),
             y=np.array([r["verdict"] == "pos" for r in rows], dtype=np.int32))
    config = _text_stack(
        "words", {"source": "npz", "path": "reviews.npz", "validation_split": 0.25,
                  "batch_size": 16},
        {"type": "TextVectorization", "adapt": True, "max_tokens": 40,
         "output_sequence_length": 8}, 2, input_dtype="string",
        middle=[{"type": "Embedding", "input_dim": 40, "output_dim": 8},
                {"type": "GlobalAveragePooling1D"}])
    assert cli("train", write_config(folder, config), "--runs-dir", folder / "runs",
               "-q") == 0
    return only_run(folder / "runs")


def test_text_vectorization_learns_the_training_words_of_an_npz(tmp_path):
    rows = review_rows(160)
    run = train_reviews_npz(tmp_path, rows)
    assert float(read_log(run / "log.csv")[-1]["val_accuracy"]) >= 0.9

    import keras

    vocabulary = keras.saving.load_model(run / "model.keras").layers[0].get_vocabulary()
    # Learned from the 120 training reviews only, and saved inside the model.
    assert {"great", "awful", "film"} <= set(vocabulary)
    assert len(vocabulary) == 2 + len({w for r in rows[:120] for w in r["review"].split()})


@pytest.mark.parametrize("layer, dtype, values", [
    ("StringLookup", "string", ["red", "green", "blue"]),
    ("IntegerLookup", "int64", [10, 20, 30]),
])
def test_a_lookup_learns_its_categories_and_trains(tmp_path, layer, dtype, values):
    n = 90
    x = np.array([[values[i % 3]] for i in range(n)])
    np.savez(tmp_path / "cats.npz", x=x, y=(np.arange(n) % 3).astype(np.int32))
    config = _text_stack(
        "lookup", {"source": "npz", "path": "cats.npz", "validation_split": 0.2,
                   "batch_size": 6},
        {"type": layer, "adapt": True, "output_mode": "one_hot", "max_tokens": 5,
         "pad_to_max_tokens": True}, 3, input_dtype=dtype, middle=[{"type": "Flatten"}])
    assert cli("train", write_config(tmp_path, config), "--runs-dir", tmp_path / "runs",
               "-q") == 0
    run = only_run(tmp_path / "runs")
    assert read_log(run / "log.csv")[-1]["val_accuracy"] == "1.0"

    import keras

    learned = keras.saving.load_model(run / "model.keras").layers[0].get_vocabulary()
    assert sorted(map(str, learned[1:])) == sorted(map(str, values))  # [0] is the OOV token


def test_a_table_keeps_its_text_columns_as_strings_and_the_rest_as_before(tmp_path):
    from cbrun.config.data.csv import CsvData
    from cbrun.engine.sources import load_splits

    rows = review_rows(40)
    write_csv(tmp_path / "reviews.csv", rows)
    cfg = CsvData(**REVIEWS_DATA, split="tail")  # the training rows: the first 30
    assert cfg.preflight(tmp_path, seed=42) == []
    splits = load_splits(cfg, tmp_path, seed=42)
    assert splits.train.x["review"][:, 0].tolist() == [r["review"] for r in rows[:30]]
    assert splits.train.x["stars"][:, 0].tolist() == [
        ["one", "three", "two"].index(r["stars"]) + 1 for r in rows[:30]]
    saved = splits.artifacts["table.json"]
    assert saved["text"] == ["review"] and "review" not in saved["vocabularies"]


def test_a_table_with_text_trains_a_graph_of_named_inputs(tmp_path):
    write_csv(tmp_path / "reviews.csv", review_rows())
    path = write_config(tmp_path, text_graph_config("reviews", REVIEWS_DATA))
    assert cli("train", path, "--runs-dir", tmp_path / "runs", "-q") == 0
    run = only_run(tmp_path / "runs")
    assert float(read_log(run / "log.csv")[-1]["val_accuracy"]) >= 0.9
    saved = json.loads((run / "data" / "table.json").read_text())
    assert saved["text"] == ["review"] and saved["classes"] == {"verdict": ["neg", "pos"]}


@pytest.mark.parametrize("change, where, message", [
    ({"text": ["review", "stars"]}, "data.features.stars",  # a mix in one named input
     "text column stars and number columns"),
    ({"features": ["review", "length"]}, "data.text",
     "text column review and number columns length cannot form one input"),
    ({"text": ["reveiw"]}, "data.text[0]", "'reveiw' is not among the feature columns"),
])
def test_text_mistakes_in_a_table_are_found_before_training(tmp_path, capsys, change, where,
                                                            message):
    write_csv(tmp_path / "reviews.csv", review_rows(20))
    config = text_graph_config("bad", {**REVIEWS_DATA, **change})
    if change.get("text") == ["review", "stars"]:
        config["data"]["features"] = {"review": ["review"], "stars": ["stars", "length"],
                                      "length": ["length"]}
    result = cli_output(capsys, "validate", write_config(tmp_path, config))
    assert result.code == 2
    assert where in result.out and message in result.out, result.out


def test_a_text_column_that_holds_numbers_is_named(tmp_path, capsys):
    write_csv(tmp_path / "reviews.csv", review_rows(20))
    config = text_graph_config("bad", {**REVIEWS_DATA, "text": ["review", "length"],
                                       "features": {"review": ["review"], "stars": ["stars"],
                                                    "length": ["length"]}})
    result = cli_output(capsys, "validate", write_config(tmp_path, config))
    assert result.code == 2
    assert "column 'length' holds double values, not text" in result.out, result.out


def test_a_wide_lookup_without_a_fixed_size_is_refused_at_its_key(tmp_path, capsys):
    config = _text_stack("wide", {"source": "digits"}, {
        "type": "StringLookup", "adapt": True, "output_mode": "multi_hot"}, 3,
        input_dtype="string")
    result = cli_output(capsys, "validate", write_config(tmp_path, config))
    assert result.code == 2
    assert "model.layers[0].output_mode" in result.out
    assert "max_tokens: N and pad_to_max_tokens: true" in result.out


def test_text_fed_to_a_numeric_input_is_named_before_the_first_batch(tmp_path, capsys):
    np.savez(tmp_path / "words.npz", x=np.array([["a b"], ["c d"]] * 10),
             y=np.zeros(20, np.int32))
    config = _text_stack("numeric", {"source": "npz", "path": "words.npz"},
                         {"type": "Dense", "units": 4}, 2, input_dtype="float32")
    result = cli_output(capsys, "train", write_config(tmp_path, config), "--runs-dir",
                        tmp_path / "runs")
    assert result.code == 2
    assert "model.input_dtype" in result.err, result.err
    assert "are text; declare the input's dtype as string" in result.err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
