"""`cbrun evaluate` and `cbrun predict` on real runs: digits (arrays), a CSV table with
string columns, class folders of images."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, cli, cli_output, only_run, read_log, tiny_config, write_config
from tests.datafiles import image_config, table_config, table_rows, write_csv, write_images
from tests.helpers.light import run_cbrun

CHECKPOINT = {"type": "ModelCheckpoint", "monitor": "val_loss", "save_best_only": True,
              "filepath": "checkpoints/ep{epoch:03d}-{val_loss:.4f}.keras"}


def _train(folder: Path, config: dict) -> Path:
    path = write_config(folder, config)
    assert cli("train", path, "--runs-dir", folder / "runs", "--quiet") == 0
    return only_run(folder / "runs")


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> Path:
    """val_loss is best at an earlier epoch than the last (checked in the test)."""
    config = tiny_config(name="digits", fit={"epochs": 5}, callbacks=[CHECKPOINT])
    config["compile"]["optimizer"]["learning_rate"] = 0.05
    # The last rows held out, as every run of cbrun 0.1 held them out: its tests evaluate
    # those rows as a file, and read the run as one of cbrun 0.1.
    config["data"]["split"] = "tail"
    return _train(tmp_path_factory.mktemp("digits"), config)


@pytest.fixture(scope="module")
def table_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("table")
    write_csv(folder / "animals.csv", table_rows(150))
    data = {"source": "csv", "path": "animals.csv", "label": "species", "batch_size": 16,
            "validation_split": 0.2, "test_split": 0.2}
    return _train(folder, table_config("animals", data))


@pytest.fixture(scope="module")
def image_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    write_images(folder / "shapes", per_class=8)
    return _train(folder, image_config("shapes", {"path": "shapes", "validation_split": 0.25},
                                       epochs=2))


def _evaluate_json(capsys, *args) -> dict:
    result = cli_output(capsys, "evaluate", *map(str, args), "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def _logged(run_dir: Path, epoch: int) -> dict[str, float]:
    row = read_log(run_dir / "log.csv")[epoch - 1]
    return {k.removeprefix("val_"): float(v) for k, v in row.items() if k.startswith("val_")}


# --- evaluate ----------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["last", "best"])
def test_evaluate_reproduces_the_logged_validation_values(digits_run, capsys, which):
    losses = [float(r["val_loss"]) for r in read_log(digits_run / "log.csv")]
    best = losses.index(min(losses)) + 1
    assert best < len(losses), "the config must make the best epoch an earlier one"
    result = _evaluate_json(capsys, digits_run, "--split", "validation", "--checkpoint", which)
    assert result["epoch"] == (best if which == "best" else len(losses))
    logged = _logged(digits_run, result["epoch"])
    assert result["metrics"].keys() == logged.keys()
    for name, value in result["metrics"].items():
        assert abs(value - logged[name]) < 1e-6, name
    matrix = np.array(result["confusion"])
    assert result["classes"] == [str(i) for i in range(10)]
    assert matrix.sum() == result["samples"] == 360
    assert abs(np.trace(matrix) / matrix.sum() - result["metrics"]["accuracy"]) < 1e-6


def test_evaluate_prints_a_table_and_draws_the_confusion_matrix(digits_run, capsys, tmp_path):
    from matplotlib.image import imread

    png = tmp_path / "confusion.png"
    result = cli_output(capsys, "evaluate", digits_run, "-o", png)
    assert result.code == 0, result.err
    assert "the validation split (360 samples)" in result.out
    assert "accuracy" in result.out and "true \\ predicted" in result.out
    assert png.read_bytes().startswith(b"\x89PNG")
    pixels = imread(png)
    assert pixels.shape[0] > 300 and pixels.shape[1] > 300
    assert pixels[..., :3].std() > 0.05  # not blank: shaded cells, labels, a colour bar


def test_evaluate_an_npz_file_of_the_runs_kind(digits_run, capsys, tmp_path):
    """A digits run (no saved data/ at all, as in cbrun 0.1) takes an .npz with x and y."""
    with np.load(REPO / "cbrun" / "datasets" / "digits.npz") as archive:
        x, y = archive["x"][-360:], archive["y"][-360:]  # the validation rows
    np.savez(tmp_path / "new.npz", x=x, y=y)
    result = _evaluate_json(capsys, digits_run, "--data", tmp_path / "new.npz")
    for name, value in _logged(digits_run, 5).items():
        assert abs(result["metrics"][name] - value) < 1e-6, name


def test_a_run_of_cbrun_0_1_evaluates(digits_run, capsys, tmp_path):
    """cbrun 0.1 wrote a digits run's resolved.yaml with its npz keys at their defaults
    (seen by training with the commit before data sources, 43f42ea^); they are read as
    nothing, and only at those defaults."""
    import shutil

    import yaml

    copy = tmp_path / digits_run.name
    shutil.copytree(digits_run, copy)
    resolved = yaml.safe_load((copy / "resolved.yaml").read_text())
    resolved["data"] = {"source": "digits", "path": None, "x_key": "x", "y_key": "y",
                        "validation_path": None, "validation_split": 0.2, "batch_size": 64,
                        "shuffle": True}
    (copy / "resolved.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
    result = _evaluate_json(capsys, copy)
    for name, value in _logged(digits_run, 5).items():
        assert abs(result["metrics"][name] - value) < 1e-6, name
    resolved["data"]["x_key"] = "pixels"
    (copy / "resolved.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
    failed = cli_output(capsys, "evaluate", copy)
    assert failed.code == 2 and "data.x_key: unknown key 'x_key'" in failed.err


def test_evaluate_defaults_to_the_test_split_and_matches_run_json(table_run, capsys):
    result = _evaluate_json(capsys, table_run)
    assert result["data"] == "the test split"
    recorded = json.loads((table_run / "run.json").read_text())["test"]
    for name, value in result["metrics"].items():
        assert abs(value - recorded[f"test_{name}"]) < 1e-6, name
    assert result["classes"] == ["cat", "dog", "fox"]


def test_evaluate_a_table_through_the_saved_vocabulary(table_run, capsys, tmp_path):
    """A file with only some colours and species: re-deriving the vocabulary and classes
    from it would number them differently; the run's saved ones are used."""
    from cbrun.data.tables import encode_table, learn
    from cbrun.engine.runmodel import load_run_model
    from cbrun.run.checkpoints import choose_checkpoint, open_run

    rows = [r for r in table_rows(300, seed=5) if r["colour"] != "blue"
            and r["species"] != "cat"]
    path = write_csv(tmp_path / "new.csv", rows)
    result = _evaluate_json(capsys, table_run, "--data", path)
    assert result["classes"] == ["cat", "dog", "fox"]
    assert np.array(result["confusion"])[0].sum() == 0  # no true cat

    run = open_run(table_run)
    model = load_run_model(run, choose_checkpoint(run, "last"))
    table = run.config.data.read(path)
    saved = json.loads((table_run / "data" / "table.json").read_text())
    x, y = encode_table(table, saved, "new.csv")
    expected = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    for name, value in expected.items():
        assert abs(result["metrics"][name] - float(value)) < 1e-6, name
    relearned = learn(table, run.config.data)
    assert relearned["vocabularies"]["colour"] != saved["vocabularies"]["colour"]
    x2, y2 = encode_table(table, relearned, "new.csv")
    assert not np.array_equal(x, x2) and not np.array_equal(y, y2)
    other = model.evaluate(x2, y2, batch_size=16, verbose=0, return_dict=True)
    assert abs(float(other["loss"]) - result["metrics"]["loss"]) > 1e-3


def test_evaluate_an_image_run_reproduces_its_last_epoch(image_run, capsys):
    result = _evaluate_json(capsys, image_run)
    assert result["classes"] == ["bar", "square"]
    for name, value in _logged(image_run, 2).items():
        assert abs(result["metrics"][name] - value) < 1e-6, name


def test_evaluate_a_folder_with_some_of_the_classes(image_run, capsys, tmp_path):
    import shutil

    folder = write_images(tmp_path / "new", per_class=3, seed=4)
    shutil.rmtree(folder / "bar")
    result = _evaluate_json(capsys, image_run, "--data", folder)
    assert result["classes"] == ["bar", "square"] and result["samples"] == 3
    assert sum(result["confusion"][0]) == 0 and sum(result["confusion"][1]) == 3
    (folder / "circle").mkdir()
    failed = cli_output(capsys, "evaluate", image_run, "--data", folder)
    assert failed.code == 2 and "class folder circle the run never trained on" in failed.err


# --- predict ----------------------------------------------------------------------------

def test_predict_an_image_folder_writes_a_row_per_file(image_run, capsys, tmp_path):
    import csv

    images = write_images(tmp_path / "new", per_class=3, seed=9)
    out = tmp_path / "pred.csv"
    result = cli_output(capsys, "predict", image_run, images, "-o", out, "--top-k", "2")
    assert result.code == 0, result.err
    assert "6 predictions" in result.out
    rows = list(csv.DictReader(out.open()))
    assert [r["file"] for r in rows] == sorted(str(p) for p in images.rglob("*.*"))
    assert list(rows[0]) == ["file", "class", "probability", "class_2", "probability_2"]
    for row in rows:
        assert {row["class"], row["class_2"]} == {"bar", "square"}
        assert abs(float(row["probability"]) + float(row["probability_2"]) - 1) < 1e-5
        assert float(row["probability"]) >= float(row["probability_2"])
    one = tmp_path / "one.npz"
    assert cli("predict", image_run, rows[0]["file"], "-o", one) == 0
    with np.load(one) as saved:
        assert saved["class"].tolist() == [rows[0]["class"]]
        assert saved["raw"].shape == (1, 2)


def test_predict_a_table_without_its_label(table_run, capsys, tmp_path):
    import csv

    rows = table_rows(7, seed=11)
    for row in rows:
        del row["species"]
    rows[2]["colour"] = "purple"
    out = tmp_path / "pred.csv"
    result = cli_output(capsys, "predict", table_run, write_csv(tmp_path / "new.csv", rows),
                        "-o", out)
    assert result.code == 0, result.err
    assert "'purple' never appeared in training" in result.err
    written = list(csv.DictReader(out.open()))
    assert [r["row"] for r in written] == [str(i) for i in range(1, 8)]
    assert {r["class"] for r in written} <= {"cat", "dog", "fox"}


def test_predict_names_missing_and_extra_columns(table_run, capsys, tmp_path):
    rows = table_rows(3)
    for row in rows:
        row["weight"] = row.pop("weight_g")
    result = cli_output(capsys, "predict", table_run, write_csv(tmp_path / "bad.csv", rows),
                        "-o", tmp_path / "p.csv")
    assert result.code == 2
    assert "lacks the column 'weight_g'" in result.err and "did you mean" in result.err
    assert len(result.err.strip().splitlines()) == 1
    rows = table_rows(3)
    for row in rows:
        row["note"] = "x"
    result = cli_output(capsys, "predict", table_run, write_csv(tmp_path / "more.csv", rows),
                        "-o", tmp_path / "p.csv")
    assert result.code == 2 and "column 'note' the run never trained on" in result.err


def test_several_outputs_get_columns_per_output(tmp_path, capsys):
    import csv

    from tests.test_models import TWO_IO, two_io_data

    two_io_data(tmp_path)
    (tmp_path / "run.yaml").write_text(TWO_IO)
    assert cli("train", tmp_path / "run.yaml", "--runs-dir", tmp_path / "runs", "-q") == 0
    run_dir = only_run(tmp_path / "runs")
    result = _evaluate_json(capsys, run_dir)
    assert result["confusion"] is None
    for name, value in _logged(run_dir, 3).items():
        assert abs(result["metrics"][name] - value) < 1e-6, name
    with np.load(tmp_path / "two.npz") as archive:
        np.savez(tmp_path / "new.npz", a=archive["a"][:5], b=archive["b"][:5])
    out = tmp_path / "pred.csv"
    assert cli("predict", run_dir, tmp_path / "new.npz", "-o", out) == 0
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["row", "digit_class", "digit_probability", "size_output"]
    assert len(rows) == 5 and {r["digit_class"] for r in rows} <= {"0", "1", "2"}


# --- user errors -----------------------------------------------------------------------------

def test_user_errors_are_one_line_and_exit_2(digits_run, table_run, capsys, tmp_path):
    cases = [
        (("evaluate", tmp_path), "is not a run directory"),
        (("evaluate", digits_run, "--split", "test"), "has no test split"),
        (("evaluate", digits_run, "--checkpoint", "nope.keras"), "neither last, best"),
        (("evaluate", table_run, "--checkpoint", "best"), "kept no checkpoint"),
        (("evaluate", digits_run, "-o", tmp_path / "c.jpg"), "name a .png file"),
        (("predict", digits_run, tmp_path, "-o", tmp_path / "p.txt"), "a .csv, a .parquet or an .npz file"),
        (("predict", digits_run, tmp_path / "none.npz", "-o", tmp_path / "p.csv"),
         "does not exist"),
        (("predict", digits_run, tmp_path / "bare.npy", "-o", tmp_path / "p.csv"),
         "is a single array (.npy), not a .npz archive"),
    ]
    np.save(tmp_path / "bare.npy", np.zeros((3, 64), "float32"))
    for args, message in cases:
        result = cli_output(capsys, *args)
        assert result.code == 2, (args, result.err)
        assert message in result.err, (args, result.err)
        assert len(result.err.strip().splitlines()) == 1, result.err


def test_help_and_refusals_do_not_import_tensorflow(tmp_path):
    result = run_cbrun(["evaluate", "--help"], ["predict", "--help"], ["evaluate", tmp_path])
    assert result.codes == [0, 0, 2] and result.heavy == []
    assert "--checkpoint last|best|FILE" in result.commands[0].out
    assert "--top-k" in result.commands[1].out


# --- new files checked as training checks its data (issue 22) --------------------------------

def _npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(("command", "arrays", "message"), [
    ("predict", {"x": np.zeros((5, 32))},
     "the wide.npz samples have shape [32], but the model expects shape [64]"),
    ("predict", {"x": np.zeros((0, 64))}, "wide.npz holds no samples"),
    ("evaluate", {"x": np.zeros((0, 64)), "y": np.zeros(0, int)}, "wide.npz holds no samples"),
    ("evaluate", {"x": np.zeros((5, 64)), "y": np.array([0, 1, 2, 3, 12])},
     "the wide.npz labels run from 0 to 12, but the last layer has 10 outputs"),
    ("predict", {"x": np.full((3, 64), "a")},
     "the wide.npz samples are text, but the model takes numbers"),
    ("evaluate", {"x": np.zeros((5, 64)), "y": np.eye(10)[:5]},
     "expects one class id per sample, but the wide.npz labels have shape [10]"),
])
def test_an_array_file_that_does_not_fit_the_model_is_one_line(digits_run, capsys, tmp_path,
                                                                command, arrays, message):
    path = _npz(tmp_path / "wide.npz", **arrays)
    args = ("--data", path) if command == "evaluate" else (path, "-o", tmp_path / "p.csv")
    result = cli_output(capsys, command, digits_run, *args)
    assert result.code == 2, result.err
    assert message in result.err and len(result.err.strip().splitlines()) == 1, result.err
    assert "; use " not in result.err  # the file is wrong, not the config
    assert not (tmp_path / "p.csv").exists()


@pytest.mark.parametrize(("command", "text", "message"), [
    ("predict", "height_mm,weight_g,colour\n1200,heavy,red\n",
     "column 'weight_g' of {path} holds text ('heavy' at line 2), but the run trained on numbers"),
    ("predict", "height_mm,weight_g,colour\n", "{path} has no rows, only its header"),
    ("evaluate", "height_mm,weight_g,colour,species\n", "{path} has no rows, only its header"),
    ("evaluate", "height_mm,weight_g,colour,species\n1200,5000,red,wolf\n",
     "label value 'wolf' in column 'species' that the training rows never show"),
])
def test_a_table_that_does_not_fit_the_run_is_one_line(table_run, capsys, tmp_path, command,
                                                       text, message):
    path = tmp_path / "new.csv"
    path.write_text(text)
    args = ("--data", path) if command == "evaluate" else (path, "-o", tmp_path / "p.csv")
    result = cli_output(capsys, command, table_run, *args)
    assert result.code == 2, result.err
    assert message.format(path=path) in result.err, result.err
    assert len(result.err.strip().splitlines()) == 1, result.err


def test_predict_on_a_folder_skips_hidden_files_as_training_does(image_run, capsys, tmp_path):
    import csv

    images = write_images(tmp_path / "new", per_class=2, seed=3)
    (images / "bar" / "._00.jpg").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")
    (images / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (images / ".thumbnails").mkdir()
    (images / ".thumbnails" / "00.png").write_bytes(b"not a png")
    out = tmp_path / "pred.csv"
    result = cli_output(capsys, "predict", image_run, images, "-o", out)
    assert result.code == 0, result.err
    files = [row["file"] for row in csv.DictReader(out.open())]
    assert files == sorted(str(p) for p in (images / "bar").glob("[0-9]*")) + sorted(
        str(p) for p in (images / "square").glob("[0-9]*"))


# --- where -o writes (issue 22) ----------------------------------------------------------------

def _unwritable(tmp_path: Path) -> Path:
    """A folder this process cannot create files in (root ignores permission bits: /sys)."""
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    try:
        (Path("/sys") / "cbrun-probe").touch()
    except OSError:
        return Path("/sys")
    pytest.skip("no folder here refuses a new file")


def test_predict_never_replaces_a_file_without_force(digits_run, capsys, tmp_path):
    new = _npz(tmp_path / "new.npz", x=np.zeros((3, 64)))
    out = tmp_path / "pred.csv"
    out.write_text("my notes\n")
    result = cli_output(capsys, "predict", digits_run, new, "-o", out)
    assert result.code == 2 and f"{out} exists; add --force to replace it" in result.err
    assert out.read_text() == "my notes\n"
    result = cli_output(capsys, "predict", digits_run, new, "-o", out, "--force")
    assert result.code == 0, result.err
    assert out.read_text().startswith("row,class,probability\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.npz", "pred.csv"]


def test_no_output_goes_over_or_into_a_runs_own_files(digits_run, capsys, tmp_path):
    """Even with --force: a run's log.csv, its states and data, and what its callbacks
    write (their paths in its resolved.yaml) are never written by -o."""
    import hashlib
    import shutil

    import yaml

    run = tmp_path / digits_run.name
    shutil.copytree(digits_run, run)
    resolved = yaml.safe_load((run / "resolved.yaml").read_text())
    resolved["callbacks"] += [{"type": "CSVLogger", "filename": "history/metrics.csv"},
                              {"type": "TensorBoard", "log_dir": "tb"}]
    (run / "resolved.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
    (run / "history").mkdir()
    (run / "history" / "metrics.csv").write_text("epoch,loss\n0,1.0\n")

    def snapshot():
        return {p: hashlib.sha256(p.read_bytes()).hexdigest()
                for p in run.rglob("*") if p.is_file()}

    new = _npz(tmp_path / "new.npz", x=np.zeros((3, 64)))
    before = snapshot()
    cases = [("predict", "log.csv", "cbrun's log.csv"), ("predict", "state/p.csv", "state"),
             ("predict", "data/p.npz", "cbrun's data"),
             ("predict", "history/metrics.csv", "what its CSVLogger writes"),
             ("evaluate", "tb/c.png", "what its TensorBoard writes"),
             ("evaluate", "cache/c.png", "cbrun's cache")]
    for command, inside, what in cases:
        args = (new,) if command == "predict" else ()
        result = cli_output(capsys, command, run, *args, "-o", run / inside, "--force")
        assert result.code == 2, result.err
        assert what in result.err and f"in the run {run}" in result.err, result.err
    assert snapshot() == before
    result = cli_output(capsys, "predict", run, new, "-o", run / "predictions.csv")
    assert result.code == 0, result.err  # a file of the user's own in the run is fine


def test_an_unwritable_output_is_one_line_before_the_model_loads(digits_run, capsys,
                                                                  tmp_path):
    new = _npz(tmp_path / "new.npz", x=np.zeros((3, 64)))
    locked = _unwritable(tmp_path)
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    (tmp_path / "folder.csv").mkdir()
    cases = [
        (("predict", digits_run, new, "-o", locked / "p.csv"), f"cannot write in {locked}"),
        (("predict", digits_run, new, "-o", locked / "sub" / "p.csv"),
         f"cannot write in {locked}"),
        (("predict", digits_run, new, "-o", a_file / "p.csv"), f"{a_file} is a file, not a folder"),
        (("evaluate", digits_run, "-o", locked / "c.png"), f"cannot write in {locked}"),
        (("evaluate", digits_run, "-o", a_file / "c.png"), "is a file, not a folder"),
        (("export", digits_run, "-f", "saved_model", "-o", locked / "sm"),
         f"cannot write in {locked}"),
        (("export", digits_run, "-f", "saved_model", "-o", a_file / "sm"),
         "is a file, not a folder"),
    ]
    for args, message in cases:
        result = cli_output(capsys, *args)
        assert result.code == 2, (args, result.err)
        assert message in result.err and len(result.err.strip().splitlines()) == 1, result.err
        assert not result.out, result.out  # refused before anything ran
    result = cli_output(capsys, "predict", digits_run, new, "-o", tmp_path / "folder.csv")
    assert result.code == 2 and "is a directory" in result.err  # click's own check


def test_output_refusals_do_not_import_tensorflow(digits_run, tmp_path):
    kept = tmp_path / "kept.csv"
    kept.write_text("mine")
    (tmp_path / "kept.png").write_text("mine")
    result = run_cbrun(["predict", digits_run, kept, "-o", kept],
                       ["evaluate", digits_run, "-o", tmp_path / "kept.png"],
                       ["evaluate", digits_run, "-o", digits_run / "state" / "c.png", "--force"])
    assert result.codes == [2, 2, 2], result.commands
    assert result.heavy == []


# --- a run's own code: a Lambda layer, a loader that prints (issue 22) --------------------------

LAMBDA_MODELS = '''\
import keras


def build(units=16):
    inputs = keras.Input((64,))
    x = keras.layers.Lambda(lambda t: t / 16.0)(inputs)
    x = keras.layers.Dense(units, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))
'''

CHATTY_LOADER = '''\
import numpy as np


def load():
    print("chatty loader: reading digits")
    with np.load({digits!r}) as data:
        x, y = data["x"].astype("float32"), data["y"]
    return {{"train": (x[:1200], y[:1200]), "validation": (x[1200:1500], y[1200:1500])}}
'''


@pytest.fixture(scope="module")
def lambda_run(tmp_path_factory) -> Path:
    """A factory model with a Lambda layer, fed by a loader that prints on stdout."""
    folder = tmp_path_factory.mktemp("lambda")
    (folder / "lambda_models.py").write_text(LAMBDA_MODELS)
    (folder / "chatty.py").write_text(CHATTY_LOADER.format(
        digits=str(REPO / "cbrun" / "datasets" / "digits.npz")))
    config = tiny_config(name="lambda", fit={"epochs": 2},
                         model={"factory": "lambda_models:build"},
                         data={"source": "python", "function": "chatty:load",
                               "batch_size": 64},
                         callbacks=[{"type": "ModelCheckpoint",
                                     "filepath": "checkpoints/ep{epoch}.keras"}])
    return _train(folder, config)


def test_a_lambda_factory_runs_own_model_files_load(lambda_run, capsys):
    """cbrun wrote them, and the factory that made the Lambda is the run's own code; what
    the loader prints goes to stderr, so stdout is only the JSON."""
    for checkpoint in ("last", "checkpoints/ep1.keras"):
        result = cli_output(capsys, "evaluate", lambda_run, "--checkpoint", checkpoint,
                            "--json")
        assert result.code == 0, result.err
        assert json.loads(result.out)["samples"] == 300
        assert "chatty loader" in result.err and "chatty" not in result.out
    logged = _logged(lambda_run, 2)
    metrics = json.loads(cli_output(capsys, "evaluate", lambda_run, "--json").out)["metrics"]
    for name, value in logged.items():
        assert abs(metrics[name] - value) < 1e-6, name


def test_a_lambda_factory_run_exports(lambda_run, capsys, tmp_path):
    result = cli_output(capsys, "export", lambda_run, "-f", "saved_model", "-o",
                        tmp_path / "sm")
    assert result.code == 0, result.err
    assert "ok: every output within" in result.out


def test_a_file_the_run_did_not_write_loads_with_safe_mode(lambda_run, digits_run, capsys,
                                                             tmp_path):
    """Another run's Lambda model is refused in cbrun's words, and loads with
    --no-safe-mode; the same for predict and export."""
    import shutil

    foreign = shutil.copy(lambda_run / "model.keras", tmp_path / "lambda.keras")
    new = _npz(tmp_path / "new.npz", x=np.zeros((3, 64)))
    commands = [("evaluate",), ("predict", new, "-o", tmp_path / "p.csv"),
                ("export", "-f", "saved_model", "-o", tmp_path / "sm")]
    for command, *rest in commands:
        args = (command, digits_run, *rest, "--checkpoint", foreign)
        result = cli_output(capsys, *args)
        assert result.code == 2, result.err
        assert f"{foreign} holds Python code" in result.err
        assert "add --no-safe-mode" in result.err and "to the loading function" not in result.err
        assert len(result.err.strip().splitlines()) == 1
    result = cli_output(capsys, "evaluate", digits_run, "--checkpoint", foreign,
                        "--no-safe-mode", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["checkpoint"] == f"model {foreign}"


def test_safe_mode_false_in_a_config_trusts_only_the_runs_own_files(lambda_run, capsys,
                                                                    tmp_path):
    """`model: {path, safe_mode: false}` trusts its start file and what the run writes;
    a --checkpoint FILE from elsewhere still loads under safe_mode."""
    import shutil

    shutil.copy(lambda_run / "model.keras", tmp_path / "start.keras")
    config = tiny_config(name="trusting", fit={"epochs": 1},
                         model={"path": "start.keras", "safe_mode": False})
    run_dir = _train(tmp_path, config)
    assert cli_output(capsys, "evaluate", run_dir).code == 0
    foreign = shutil.copy(lambda_run / "checkpoints" / "ep1.keras", tmp_path / "other.keras")
    result = cli_output(capsys, "evaluate", run_dir, "--checkpoint", foreign)
    assert result.code == 2 and "add --no-safe-mode" in result.err, result.err
    assert cli_output(capsys, "evaluate", run_dir, "--checkpoint", foreign,
                      "--no-safe-mode").code == 0


# --- a run still training (issue 22) ---------------------------------------------------------

def test_evaluate_and_predict_a_run_while_it_trains(tmp_path, capsys):
    """The run prunes its older states every epoch while evaluate and predict read its
    newest one; neither may fail, nor block the run."""
    import time

    from tests.conftest import cbrun_process

    path = write_config(tmp_path, tiny_config(name="busy", fit={"epochs": 100000}))
    process = cbrun_process("train", path, "--runs-dir", tmp_path / "runs", "--quiet")
    try:
        while process.poll() is None and not list(tmp_path.glob("runs/*/state/epoch-*")):
            time.sleep(0.05)
        assert process.poll() is None, process.communicate()
        run_dir = only_run(tmp_path / "runs")
        new = _npz(tmp_path / "new.npz", x=np.full((4, 64), 8.0))
        epochs = []
        # Three rounds read states the run prunes behind them and see it move on: what six
        # showed, in half the model loads.
        for round_ in range(3):
            result = cli_output(capsys, "evaluate", run_dir, "--json")
            assert result.code == 0, result.err
            found = json.loads(result.out)
            assert found["checkpoint"].startswith(f"last: the saved state after epoch "
                                                  f"{found['epoch']} (the run is running")
            epochs.append(found["epoch"])
            result = cli_output(capsys, "predict", run_dir, new, "-o",
                                tmp_path / f"p{round_}.csv")
            assert result.code == 0, result.err
        assert process.poll() is None  # it trained all along
        assert epochs == sorted(epochs) and epochs[-1] > epochs[0]
    finally:
        process.terminate()
        process.communicate()


def _with_ids(rows: list[dict]) -> list[dict]:
    """New rows without their label, an id column first and a count with one left empty."""
    for i, row in enumerate(rows):
        del row["species"]
    return [{"id": f"A-{i:03d}", **row, "visits": "" if i == 2 else i * 10}
            for i, row in enumerate(rows)]


def test_predict_keeps_chosen_columns_in_csv_and_parquet(table_run, capsys, tmp_path):
    import csv

    import pyarrow.parquet as pq

    source = write_csv(tmp_path / "new.csv", _with_ids(table_rows(5, seed=3)))
    out = tmp_path / "pred.csv"
    result = cli_output(capsys, "predict", table_run, source, "-o", out, "--keep", "id",
                        "--keep", "visits")
    assert result.code == 0, result.err
    written = list(csv.DictReader(out.open()))
    assert list(written[0]) == ["row", "id", "visits", "class", "probability"]
    assert [r["id"] for r in written] == [f"A-{i:03d}" for i in range(5)]
    assert [r["visits"] for r in written] == ["0", "10", "", "30", "40"]

    parquet = tmp_path / "pred.parquet"
    result = cli_output(capsys, "predict", table_run, source, "-o", parquet, "--keep",
                        "id,visits")
    assert result.code == 0, result.err
    assert result.out.startswith("5 predictions (last: model.keras (epoch ")
    assert result.out.rstrip().endswith(f"-> {parquet}")
    table = pq.read_table(parquet)
    assert table.column_names == ["row", "id", "visits", "class", "probability"]
    assert str(table.schema.field("visits").type) == "int64"
    assert str(table.schema.field("probability").type) == "double"
    assert table.column("row").to_pylist() == [int(r["row"]) for r in written]
    assert table.column("visits").to_pylist() == [0, 10, None, 30, 40]
    assert table.column("id").to_pylist() == [r["id"] for r in written]
    assert table.column("class").to_pylist() == [r["class"] for r in written]
    assert table.column("probability").to_pylist() == [float(r["probability"])
                                                       for r in written]


def test_predict_names_what_keep_cannot_keep(table_run, digits_run, capsys, tmp_path):
    source = write_csv(tmp_path / "new.csv", _with_ids(table_rows(3, seed=3)))
    out = tmp_path / "pred.csv"
    result = cli_output(capsys, "predict", table_run, source, "-o", out, "--keep", "idd",
                        "--keep", "visits")
    assert result.code == 2
    assert result.err.strip() == (
        "error: --keep: new.csv has no column 'idd' (did you mean 'id'?); its columns: id, "
        "height_mm, weight_g, colour, visits")
    # Without --keep the extra columns are refused, and the message says how to keep them.
    result = cli_output(capsys, "predict", table_run, source, "-o", out)
    assert result.code == 2 and "drop them, or pass them through with --keep id,visits" \
        in result.err
    clash = write_csv(tmp_path / "clash.csv", [{**row, "class": "x"} for row in
                                               _with_ids(table_rows(3, seed=3))])
    result = cli_output(capsys, "predict", table_run, clash, "-o", out, "--keep",
                        "id,visits,class")
    assert result.code == 2 and result.err.strip() == (
        "error: --keep class: the predictions have a column 'class' already (row, class, "
        "probability, raw); rename that column in clash.csv")
    assert not out.exists()
    new = _npz(tmp_path / "new.npz", x=np.zeros((3, 64)))
    found = run_cbrun(["predict", digits_run, new, "-o", out, "--keep", "id"],
                      ["predict", table_run, source, "-o", out, "--keep", ","],
                      ["predict", table_run, source, "-o", tmp_path / "pred.json"])
    assert found.codes == [2, 2, 2] and found.heavy == []
    errors = [c.err.strip() for c in found.commands]
    assert errors[0] == (f"error: --keep passes columns of a table through; {digits_run} "
                         f"predicts from digits data, which has no columns")
    assert "an empty column name" in errors[1]
    assert errors[2] == (f"error: -o {tmp_path / 'pred.json'}: write predictions to a .csv, "
                         f"a .parquet or an .npz file")
