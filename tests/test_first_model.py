"""The first model is a good one, and cbrun says how good: `init`'s regression beats the
mean on rows it never saw, and every run is scored against the trivial model (majority
class, training mean) before epoch 1."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import cli, cli_output, only_run, tiny_config, write_config
from datafiles import write_csv


def raw_units(n: int, seed: int) -> list[dict]:
    """A regression table in raw units (a target from about 25 to 350, as a disease
    progression score), its inputs on scales of their own."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        age, bmi, bp = rng.uniform(20, 80), rng.uniform(18, 42), rng.uniform(60, 130)
        glucose = rng.uniform(70, 180)
        target = 25 + 2.2 * (bmi - 18) + 0.9 * (bp - 60) + 0.6 * (glucose - 70) \
            + 0.4 * (age - 20) + rng.normal(0, 12)
        rows.append({"age": round(age, 1), "bmi": round(bmi, 2), "bp": round(bp, 1),
                     "glucose": round(glucose, 1), "progression": round(target, 1)})
    return rows


def test_inits_regression_beats_the_mean_by_a_wide_margin_on_rows_it_never_saw(
        tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train_rows, unseen_rows = raw_units(400, seed=1), raw_units(150, seed=2)
    write_csv(tmp_path / "patients.csv", train_rows)
    write_csv(tmp_path / "unseen.csv", unseen_rows)
    assert cli("init", tmp_path / "patients.csv") == 0
    assert cli("train", tmp_path / "patients.yaml", "--runs-dir", tmp_path / "runs", "-q") == 0
    run = only_run(tmp_path / "runs")
    record = json.loads((run / "run.json").read_text())
    assert record["baseline"]["predicts"] == "the training mean"
    assert record["baseline"]["metrics"]["val_mae"] > 1.5 * record["best"]["value"] ** 0.5
    result = cli_output(capsys, "evaluate", run, "--data", tmp_path / "unseen.csv", "--json")
    model_mae = json.loads(result.out)["metrics"]["mae"]
    targets = np.array([r["progression"] for r in unseen_rows])
    mean = np.mean([r["progression"] for r in train_rows])
    mean_mae = float(np.mean(np.abs(targets - mean)))
    assert model_mae < 0.5 * mean_mae, (model_mae, mean_mae)


@pytest.fixture(scope="module")
def useless_and_useful(tmp_path_factory):
    """The same digits model trained with a learning rate of 0 and of 0.01."""
    folder = tmp_path_factory.mktemp("baseline")
    runs = {}
    for name, rate in (("useless", 0.0), ("useful", 0.01)):
        config = tiny_config(name=name, fit={"epochs": 2})
        config["compile"]["optimizer"]["learning_rate"] = rate
        path = write_config(folder / name, config)
        code = cli("train", path, "--runs-dir", folder / name / "runs", "-q")
        assert code == 0
        runs[name] = only_run(folder / name / "runs")
    return runs


def test_the_baseline_is_the_majority_class_scored_by_the_runs_own_metrics(
        useless_and_useful):
    from cbrun.config.data import DigitsData
    from cbrun.engine.sources import load_splits

    record = json.loads((useless_and_useful["useful"] / "run.json").read_text())
    baseline = record["baseline"]
    assert baseline["split"] == "validation"
    assert baseline["predicts"] == "the training class shares"
    splits = load_splits(DigitsData(validation_split=0.2, batch_size=64), useless_and_useful[
        "useful"], seed=7)
    train, val = splits.train.y, splits.validation.y
    shares = np.bincount(train, minlength=10) / len(train)
    majority = int(np.argmax(shares))
    assert baseline["metrics"]["val_accuracy"] == pytest.approx(np.mean(val == majority))
    cross_entropy = -np.mean(np.log(shares[val]))
    assert baseline["metrics"]["val_loss"] == pytest.approx(cross_entropy, rel=1e-5)
    assert record["best"]["value"] < 0.5 * baseline["metrics"]["val_loss"]


def test_a_model_that_learns_nothing_is_said_to_be_no_better_than_its_baseline(
        useless_and_useful, capsys):
    useless = json.loads((useless_and_useful["useless"] / "run.json").read_text())
    assert useless["best"]["value"] >= useless["baseline"]["metrics"]["val_loss"] * 0.99
    listing = json.loads(cli_output(capsys, "runs", useless_and_useful["useless"].parent,
                                    "--json").out)
    assert listing[0]["no_better_than_baseline"] is True
    table = cli_output(capsys, "runs", useless_and_useful["useless"].parent).out
    assert "baseline" in table and " !" in table
    good = json.loads(cli_output(capsys, "runs", useless_and_useful["useful"].parent,
                                 "--json").out)
    assert good[0]["no_better_than_baseline"] is False
    assert math.isclose(good[0]["baseline"]["val_loss"],
                        useless["baseline"]["metrics"]["val_loss"], rel_tol=1e-6)


def test_the_summary_says_so_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")  # the summary table's rows unwrapped
    config = tiny_config(name="flat", fit={"epochs": 1})
    config["compile"]["optimizer"]["learning_rate"] = 0.0
    result = cli_output(capsys, "train", write_config(tmp_path, config), "--runs-dir",
                        tmp_path / "runs")
    assert result.code == 0
    lines = [line for line in result.err.splitlines() if "no better than its baseline" in line]
    assert len(lines) == 1 and lines[0].startswith("warning: the run is no better than its "
                                                   "baseline: best val_loss ")
    assert "always predicting the training class shares" in result.out


def test_the_baseline_is_scored_over_every_row_of_a_split_of_several_batches():
    """A split of 10,000 rows is scored in batches of 4,096: the loss and the metric are
    those of all its rows, not of the last batch."""
    import keras

    from cbrun.engine.baseline import _Constant, score
    from cbrun.engine.sources import Split

    rng = np.random.default_rng(0)
    y = rng.normal(size=(10_000, 2)).astype(np.float32)
    y[8192:] += 3.0  # the last batch unlike the others
    value = np.array([0.5, -0.25], np.float32)
    inputs = keras.Input((1,))
    trivial = keras.Model(inputs, _Constant(value)(inputs))
    trivial.compile(loss="mse", metrics=["mae"])
    trivial.run_eagerly = True
    scored = score(trivial, Split(x=np.zeros((10_000, 3), np.float32), y=y))
    assert scored["loss"] == pytest.approx(np.mean((y - value) ** 2), rel=1e-4)
    assert scored["mae"] == pytest.approx(np.mean(np.abs(y - value)), rel=1e-4)


def test_a_regression_baseline_is_the_training_mean(tmp_path):
    rows = raw_units(120, seed=3)
    write_csv(tmp_path / "p.csv", rows)
    config = tiny_config(
        name="reg", fit={"epochs": 1},
        data={"source": "csv", "path": "p.csv", "label": "progression",
              "validation_split": 0.25, "split": "tail", "batch_size": 16},
        model={"input_shape": [4], "layers": [{"type": "Dense", "units": 1}]},
        compile={"optimizer": {"type": "Adam", "learning_rate": 0.001}, "loss": "mse",
                 "metrics": ["mae"]})
    assert cli("train", write_config(tmp_path, config), "--runs-dir", tmp_path / "runs",
               "-q") == 0
    baseline = json.loads((only_run(tmp_path / "runs") / "run.json").read_text())["baseline"]
    y = np.array([r["progression"] for r in rows], dtype=np.float32)
    mean = y[:90].mean()
    assert baseline["metrics"]["val_loss"] == pytest.approx(np.mean((y[90:] - mean) ** 2),
                                                            rel=1e-4)
    assert baseline["metrics"]["val_mae"] == pytest.approx(np.mean(np.abs(y[90:] - mean)),
                                                           rel=1e-4)


def test_evaluate_scores_the_baseline_on_the_same_rows(useless_and_useful, capsys):
    run = useless_and_useful["useful"]
    recorded = json.loads((run / "run.json").read_text())["baseline"]["metrics"]
    result = json.loads(cli_output(capsys, "evaluate", run, "--json").out)
    assert result["baseline_predicts"] == "the training class shares"
    assert result["baseline"]["loss"] == pytest.approx(recorded["val_loss"], rel=1e-6)
    assert result["baseline"]["accuracy"] == pytest.approx(recorded["val_accuracy"])
    shown = cli_output(capsys, "evaluate", run).out
    assert "baseline" in shown and "always predicts the training class shares" in " ".join(
        shown.split())


def test_an_imbalanced_tables_baseline_predicts_the_training_shares(tmp_path, monkeypatch):
    """Digits are balanced to within 0.3%, where any prior scores about log(10); a table
    with classes at 70/20/10 tells the training shares from a uniform guess."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(3)
    labels = rng.choice(["common", "middle", "rare"], size=300, p=[0.7, 0.2, 0.1])
    rows = [{"x": round(float(rng.normal()), 3), "kind": str(k)} for k in labels]
    write_csv(tmp_path / "kinds.csv", rows)
    assert cli("init", tmp_path / "kinds.csv", "--label", "kind") == 0
    assert cli("train", tmp_path / "kinds.yaml", "--runs-dir", tmp_path / "runs", "-q",
               "--set", "fit.epochs=1") == 0
    baseline = json.loads((only_run(tmp_path / "runs") / "run.json").read_text())["baseline"]
    assert baseline["predicts"] == "the training class shares"
    # a stratified split keeps every class's share in both splits to within a row
    shares = np.array([np.mean(labels == k) for k in ("common", "middle", "rare")])
    entropy = -np.sum(shares * np.log(shares))  # about 0.80; a uniform guess scores 1.10
    assert baseline["metrics"]["val_loss"] == pytest.approx(entropy, rel=0.03)
    assert baseline["metrics"]["val_accuracy"] == pytest.approx(shares[0], abs=0.03)
