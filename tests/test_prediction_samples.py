"""PredictionSamples: the same held-out digits predicted every epoch, drawn as a grid (PNG and
TensorBoard image) and tabled in a CSV; after a kill and a resume, each epoch exactly once."""

from __future__ import annotations

import csv
import io
import re
import signal
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import (
    HANG_S,
    cbrun_process,
    cli,
    cli_output,
    only_run,
    tiny_config,
    write_config,
)
from matplotlib import image as mpimg
from test_resume import interrupt_all, log_of

from cbrun.config.base import BuildContext, DataView
from cbrun.engine.callbacks import build_one
from cbrun.engine.callbacks.prediction_samples import choose

EPOCHS = 5
SAMPLES = 9
NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
CALLBACKS = [
    {"type": "PredictionSamples", "samples": SAMPLES, "image_shape": [8, 8]},
    # Flat inputs without image_shape: a table only, every other epoch, named classes.
    {"type": "PredictionSamples", "samples": 4, "every_n_epochs": 2, "directory": "table",
     "log_dir": None, "class_names": NAMES},
    {"type": "TensorBoard", "log_dir": "tensorboard"},
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An uninterrupted run, one killed inside the state write of epoch 3 (after the samples
    of epoch 3 were written, before the state that holds them) and one SIGKILLed during
    epoch 3, both resumed. The killed runs need processes of their own, and so does the
    resume whose printed lines a test reads; the rest run in this process once the kill is
    sent (cbrun starts each run from a clean Keras session; a process start and a
    TensorFlow import saved for each)."""
    root = tmp_path_factory.mktemp("samples")
    config = write_config(root, tiny_config(name="samples", fit={"epochs": EPOCHS},
                                            callbacks=CALLBACKS))
    plain = write_config(root, tiny_config(name="samples", fit={"epochs": EPOCHS},
                                           callbacks=CALLBACKS[2:]), name="plain.yaml")
    procs = {"kill-in-state-write": cbrun_process(
                 "train", config, "--runs-dir", root / "kill-in-state-write", "-q",
                 env={"CBRUN_FAULT_KILL_IN_STATE_WRITE": "3"}),
             "kill-after-2": cbrun_process("train", config, "--runs-dir",
                                           root / "kill-after-2", "-q")}
    codes = {name: code for name, (code, _) in interrupt_all({"kill-after-2": (
        procs["kill-after-2"], lambda: log_of(root / "kill-after-2"), 2,
        signal.SIGKILL)}).items()}
    outputs = {}
    resumed = cbrun_process("resume", only_run(root / "kill-after-2"))
    codes["baseline"] = cli("train", config, "--runs-dir", root / "baseline", "-q")
    codes["without"] = cli("train", plain, "--runs-dir", root / "without", "-q")
    outputs["kill-in-state-write"] = procs["kill-in-state-write"].communicate(timeout=HANG_S)
    codes["kill-in-state-write"] = procs["kill-in-state-write"].returncode
    codes["resume kill-in-state-write"] = cli("resume", only_run(root / "kill-in-state-write"))
    outputs["resume kill-after-2"] = resumed.communicate(timeout=HANG_S)
    codes["resume kill-after-2"] = resumed.returncode
    return {"root": root, "codes": codes, "outputs": outputs}


def run_of(runs, name: str) -> Path:
    return only_run(runs["root"] / name)


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def tb_images(log_dir: Path) -> list[tuple[int, np.ndarray]]:
    """(step, pixels) of every image summary under the tag, read back with TensorBoard's
    own event reader, in file order with duplicates kept (to be checked)."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util import tensor_util

    found = []
    for path in sorted(log_dir.rglob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.tag != "predictions":
                    continue
                assert value.metadata.plugin_data.plugin_name == "images"
                width, height, png = tensor_util.make_ndarray(value.tensor)
                pixels = mpimg.imread(io.BytesIO(png), format="png")
                assert pixels.shape[:2] == (int(height), int(width))
                found.append((event.step, pixels))
    return found


def validation_digits() -> tuple[np.ndarray, np.ndarray]:
    """The validation rows the runs drew (tiny_config's seed and split)."""
    from cbrun.config.data import DigitsData
    from cbrun.engine.sources import load_splits

    config = tiny_config()
    splits = load_splits(DigitsData.model_validate(config["data"]), Path("."),
                         seed=config["seed"])
    return splits.validation.x, splits.validation.y


def test_the_runs_finish(runs):
    assert runs["codes"]["baseline"] == 0
    assert runs["codes"]["kill-in-state-write"] == -signal.SIGKILL
    assert runs["codes"]["kill-after-2"] == -signal.SIGKILL
    for name in ("kill-in-state-write", "kill-after-2"):
        assert runs["codes"][f"resume {name}"] == 0, runs["outputs"].get(f"resume {name}")


def test_watching_does_not_change_training(runs):
    """Predicting draws no random numbers and changes no weights: log.csv is the same byte
    for byte as the same run's without PredictionSamples."""
    assert runs["codes"]["without"] == 0
    log = (run_of(runs, "baseline") / "log.csv").read_bytes()
    assert log == (run_of(runs, "without") / "log.csv").read_bytes()


def test_a_png_per_epoch_shows_the_digits(runs):
    folder = run_of(runs, "baseline") / "predictions"
    pngs = sorted(p.name for p in folder.glob("*.png"))
    assert pngs == [f"epoch-{n:03d}.png" for n in range(1, EPOCHS + 1)]
    for name in pngs:
        pixels = mpimg.imread(folder / name)
        assert pixels.shape[0] > 300 and pixels.shape[1] > 300
        assert pixels[..., :3].std() > 0.2  # black-and-white digits, not a blank canvas
        assert len(np.unique(pixels[..., :3].reshape(-1, 3), axis=0)) > 20


def test_tensorboard_shows_one_image_per_epoch_equal_to_the_png(runs):
    from tensorboard.backend.event_processing import event_accumulator

    run = run_of(runs, "baseline")
    acc = event_accumulator.EventAccumulator(str(run / "tensorboard" / "predictions"))
    acc.Reload()  # what TensorBoard's images tab lists
    assert acc.SummaryMetadata("predictions").plugin_data.plugin_name == "images"
    images = tb_images(run / "tensorboard" / "predictions")
    assert [step for step, _ in images] == list(range(EPOCHS))
    for step, pixels in images:
        png = mpimg.imread(run / "predictions" / f"epoch-{step + 1:03d}.png")
        assert np.array_equal(pixels, png)


def test_the_table_holds_truth_and_the_models_predictions(runs):
    run = run_of(runs, "baseline")
    rows = read_rows(run / "predictions" / "predictions.csv")
    assert len(rows) == EPOCHS * SAMPLES
    assert [int(r["epoch"]) for r in rows] == [e for e in range(EPOCHS) for _ in range(SAMPLES)]
    picked = [int(r["sample"]) for r in rows[:SAMPLES]]
    assert all([int(r["sample"]) for r in rows[e * SAMPLES:(e + 1) * SAMPLES]] == picked
               for e in range(EPOCHS))
    x_val, y_val = validation_digits()
    assert [r["true"] for r in rows[:SAMPLES]] == [str(y_val[i]) for i in picked]
    # The last epoch's predictions are those of the final model.
    probs = keras.saving.load_model(run / "model.keras").predict(x_val[picked], verbose=0)
    last = rows[-SAMPLES:]
    assert [int(r["predicted"]) for r in last] == list(probs.argmax(1))
    assert [float(r["probability"]) for r in last] == pytest.approx(probs.max(1), abs=1e-5)


def test_flat_inputs_without_image_shape_go_to_a_table_with_their_values(runs):
    folder = run_of(runs, "baseline") / "table"
    assert sorted(p.name for p in folder.iterdir()) == ["predictions.csv"]
    rows = read_rows(folder / "predictions.csv")
    assert list(rows[0]) == ["epoch", "sample", *[f"x{i}" for i in range(64)], "true",
                             "predicted", "probability"]
    assert sorted({int(r["epoch"]) for r in rows}) == [1, 3]  # every 2nd epoch, 0-based
    x_val, y_val = validation_digits()
    for row in rows:
        index = int(row["sample"])
        assert [float(row[f"x{i}"]) for i in range(64)] == list(x_val[index])
        assert row["true"] == NAMES[y_val[index]] and row["predicted"] in NAMES


@pytest.mark.parametrize("name", ["kill-in-state-write", "kill-after-2"])
def test_a_resumed_run_writes_each_epoch_once_like_the_uninterrupted_one(runs, name):
    baseline, resumed = run_of(runs, "baseline"), run_of(runs, name)
    assert (resumed / "log.csv").read_bytes() == (baseline / "log.csv").read_bytes()
    for table in ("predictions/predictions.csv", "table/predictions.csv"):
        assert (resumed / table).read_bytes() == (baseline / table).read_bytes(), table
    pngs = sorted(p.name for p in (resumed / "predictions").glob("*.png"))
    assert pngs == sorted(p.name for p in (baseline / "predictions").glob("*.png"))
    for png in pngs:
        assert np.array_equal(mpimg.imread(resumed / "predictions" / png),
                              mpimg.imread(baseline / "predictions" / png)), png
    images = tb_images(resumed / "tensorboard" / "predictions")
    assert [step for step, _ in images] == list(range(EPOCHS))
    expected = tb_images(baseline / "tensorboard" / "predictions")
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(images, expected, strict=True))


def test_the_resumed_run_says_each_grid_it_writes_under_its_epoch(runs):
    """The table-only PredictionSamples (every 2nd epoch, flat inputs) says nothing."""
    lines = runs["outputs"]["resume kill-after-2"][0].splitlines()
    shown = [(int(m.group(1)), lines[i + 1]) for i, line in enumerate(lines)
             if (m := re.match(r"epoch (\d+)/", line))]
    first = shown[0][0]
    assert first > 1 and [n for n, _ in shown] == list(range(first, EPOCHS + 1))
    assert [said for _, said in shown] == [
        f"  > sample grid written: predictions/epoch-{n:03d}.png" for n, _ in shown]
    assert sum("> " in line for line in lines) == len(shown)


def test_the_sample_is_a_function_of_the_seed():
    assert list(choose(7, 360, 16)) == list(choose(7, 360, 16))
    assert list(choose(7, 360, 16)) != list(choose(8, 360, 16))
    assert list(choose(7, 5, 16)) == [0, 1, 2, 3, 4]  # fewer inputs than asked: all of them


def test_class_names_come_from_the_data_source(tmp_path):
    """A source that knows its class names hands them over through the BuildContext."""
    from pydantic import TypeAdapter

    from cbrun.callbacks.registry import CallbackConfig

    x = np.random.default_rng(0).random((40, 4, 4, 1)).astype("float32")
    y = np.arange(40) % 3
    view = DataView(splits={"validation": (x, y)}, seed=1, class_names=["cat", "dog", "eel"])
    spec = TypeAdapter(CallbackConfig).validate_python(
        {"type": "PredictionSamples", "samples": 6, "log_dir": None})
    callback = build_one(spec, BuildContext(run_dir=tmp_path, config_dir=tmp_path, data=view))
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, verbose=0, callbacks=[callback])
    rows = read_rows(tmp_path / "predictions" / "predictions.csv")
    assert {r["true"] for r in rows} <= {"cat", "dog", "eel"} and len(rows) == 6
    assert (tmp_path / "predictions" / "epoch-001.png").is_file()  # [h, w, 1]: an image


@pytest.mark.parametrize("changes, expected", [
    ({"data": {"source": "digits", "validation_split": 0.0}},
     ["callbacks[0].split", "needs validation data"]),
    ({"callbacks": [{"type": "PredictionSamples", "image_shape": [8, 9]}]},
     ["callbacks[0].image_shape", "holds 72 values", "hold 64"]),
    ({"callbacks": [{"type": "PredictionSamples"}, {"type": "PredictionSamples"}]},
     ["callbacks[1].directory", "another PredictionSamples already writes"]),
])
def test_config_mistakes_are_found_before_training(tmp_path, capsys, changes, expected):
    config = tiny_config(callbacks=[{"type": "PredictionSamples"}])
    config.update(changes)
    code, out, err = cli_output(capsys, "validate", write_config(tmp_path, config))
    assert code == 2
    for part in expected:
        assert part in out + err


@pytest.mark.parametrize("spec, expected", [
    ({"split": "test"}, "callbacks[0].split: the data has no test split"),
    ({"class_names": ["zero", "one"]},
     "callbacks[0].class_names: 2 class names, but the validation labels go up to 9"),
])
def test_what_only_the_data_can_tell_stops_the_run_before_training(tmp_path, capsys, spec,
                                                                   expected):
    config = write_config(tmp_path, tiny_config(callbacks=[{"type": "PredictionSamples",
                                                            **spec}]))
    code, _, err = cli_output(capsys, "train", config, "--runs-dir", tmp_path / "runs")
    assert code == 2
    assert expected in err


def test_outputs_are_read_as_classes_yes_no_or_values():
    from cbrun.engine.callbacks.prediction_samples import interpret

    # Logits (no softmax layer) become probabilities; one-hot truth becomes class ids.
    truth, predicted, prob = interpret(np.array([[2.0, 0.0], [0.0, 3.0]]),
                                       np.array([[1, 0], [1, 0]]))
    assert (truth, predicted) == ([0, 0], [0, 1])
    assert prob == pytest.approx([np.exp(2) / (np.exp(2) + 1), np.exp(3) / (np.exp(3) + 1)])
    # One sigmoid output with 0/1 labels: the probability of the class predicted.
    truth, predicted, prob = interpret(np.array([[0.9], [0.2]]), np.array([1, 1]))
    assert (truth, predicted, prob) == ([1, 1], [1, 0], pytest.approx([0.9, 0.8]))
    # Anything else is a value: no probability.
    truth, predicted, prob = interpret(np.array([[1.5], [2.5]]), np.array([1.25, 3.0]))
    assert (truth, predicted, prob) == ([1.25, 3.0], [1.5, 2.5], [None, None])
