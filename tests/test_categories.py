"""Categories encoded inside the model: the trained model, `cbrun predict` and the ONNX and
LiteRT exports all take the raw columns by name (strings and numbers), and agree."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from conftest import cli, only_run
from datafiles import write_csv

CUTS = ["Fair", "Good", "Very Good", "Premium", "Ideal"]
CITIES = [f"city {i}" for i in range(30)]  # more values than one-hot: an embedding


def gems(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        carat, cut, city = rng.uniform(0.2, 3), int(rng.integers(5)), int(rng.integers(30))
        price = 1000 + 3000 * carat + 400 * cut + 25 * city + rng.normal(0, 150)
        rows.append({"carat": round(carat, 2), "cut": CUTS[cut], "city": CITIES[city],
                     "price": round(price)})
    return rows


@pytest.fixture(scope="module")
def gem_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gems")
    write_csv(folder / "gems.csv", gems(300, seed=0))
    assert cli("init", folder / "gems.csv", "-o", folder / "gems.yaml") == 0
    assert cli("train", folder / "gems.yaml", "--set", "fit.epochs=3", "--runs-dir",
               folder / "runs", "-q") == 0
    new = gems(6, seed=1)
    new[0]["city"] = "a city never seen"
    new[1]["cut"] = "Excellent"  # not a value of training either
    for row in new:
        del row["price"]
    write_csv(folder / "new.csv", new)
    return only_run(folder / "runs"), folder, new


def _predicted(gem_run) -> np.ndarray:
    run, folder, _ = gem_run
    assert cli("predict", run, folder / "new.csv", "-o", folder / "p.csv", "--force") == 0
    with (folder / "p.csv").open() as handle:
        return np.array([float(r["output"]) for r in csv.DictReader(handle)])


def _raw(rows: list[dict]) -> dict[str, np.ndarray]:
    return {"carat": np.array([[r["carat"]] for r in rows], dtype=np.float32),
            "cut": np.array([[r["cut"]] for r in rows], dtype=object),
            "city": np.array([[r["city"]] for r in rows], dtype=object)}


def test_the_model_takes_raw_columns_and_knows_no_vocabulary_file(gem_run):
    import keras

    run, _, new = gem_run
    table = json.loads((run / "data" / "table.json").read_text())
    assert table["vocabularies"] == {}  # nothing to redo by hand when serving
    model = keras.saving.load_model(run / "model.keras")
    assert sorted(model.input_names if hasattr(model, "input_names") else
                  [t.name for t in model.inputs]) == ["carat", "city", "cut"]
    raw = _raw(new)
    out = model({**raw, "cut": raw["cut"].astype(str), "city": raw["city"].astype(str)})
    np.testing.assert_allclose(np.asarray(out)[:, 0], _predicted(gem_run), rtol=1e-5)
    assert np.asarray(out).min() > 500  # in the data's units, not scaled


@pytest.mark.parametrize("fmt", ["onnx", "litert"])
def test_an_export_takes_the_raw_columns_agrees_with_predict_and_prints_no_log_lines(
        gem_run, fmt, tmp_path):
    """Exported as a user runs it, a fresh process without TF_CPP_MIN_LOG_LEVEL: the ONNX
    export of a model with lookup tables goes through a SavedModel and tf2onnx's command line
    (engine/export.py), another way for TensorFlow's C++ lines to reach stderr. The file it
    wrote takes the raw columns by name and predicts what `cbrun predict` does."""
    import os
    import subprocess
    import sys

    from conftest import REPO

    run, _, new = gem_run
    suffix = {"onnx": "onnx", "litert": "tflite"}[fmt]
    target = tmp_path / f"gems.{suffix}"
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run([sys.executable, "-m", "cbrun", "export", str(run), "-f", fmt,
                           "-o", str(target)],
                          capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().splitlines()[-1].startswith("ok: every output within")
    assert done.stderr == "", "log lines on stderr"

    raw = _raw(new)
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(target),
                                               providers=["CPUExecutionProvider"])
        kinds = {i.name: i.type for i in session.get_inputs()}
        assert kinds == {"carat": "tensor(float)", "cut": "tensor(string)",
                         "city": "tensor(string)"}
        got = session.run(None, raw)[0][:, 0]
    else:
        from ai_edge_litert.interpreter import Interpreter

        runner = Interpreter(model_path=str(target)).get_signature_runner()
        assert set(runner.get_input_details()) == {"carat", "cut", "city"}
        out = runner(**{k: (v.astype(bytes) if v.dtype == object else v)
                        for k, v in raw.items()})
        got = np.asarray(next(iter(out.values())))[:, 0]
    np.testing.assert_allclose(got, _predicted(gem_run), rtol=1e-4)
