"""Any Keras model: functional graphs with several inputs and outputs, shared layers,
backbones from keras.applications, unfreeze stages, factories and saved models."""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import (
    HANG_S,
    REPO,
    cbrun_process,
    cli,
    cli_output,
    only_run,
    read_log,
    tiny_config,
    write_config,
)
from datafiles import write_images
from test_resume import differences

from cbrun.state.files import FAULT_ENV
from tests.helpers.light import run_cbrun

# Two inputs (a, b) through one shared Dense, two outputs: a class and a number.
TWO_IO = textwrap.dedent("""\
    name: two-io
    seed: 3
    data:
      source: npz
      path: two.npz
      x: {a: a, b: b}
      y: {digit: digit, size: size}
      validation_split: 0.25
      batch_size: 16
    model:
      inputs:
        a: {shape: [6]}
        b: {shape: [6]}
      layers:
        - {name: encode_a, type: Dense, units: 8, activation: relu, inputs: a}
        - {name: encode_b, shares: encode_a, inputs: b}
        - {name: both, type: Concatenate, inputs: [encode_a, encode_b]}
        - {name: digit, type: Dense, units: 3, activation: softmax, inputs: both}
        - {name: size, type: Dense, units: 1, inputs: both}
      outputs: [digit, size]
    compile:
      optimizer: {type: Adam, learning_rate: 0.02}
      loss: {digit: sparse_categorical_crossentropy, size: mse}
      loss_weights: {digit: 1.0, size: 0.5}
      metrics: {digit: [accuracy], size: [mae]}
    fit:
      epochs: 3
    callbacks:
      - type: ModelCheckpoint
        filepath: checkpoints/ep{epoch:02d}-acc{val_digit_accuracy:.3f}.keras
      - type: EarlyStopping
        monitor: val_size_loss
        mode: min
        patience: 5
    """)


def two_io_data(folder: Path) -> None:
    rng = np.random.default_rng(0)
    a = rng.random((96, 6), dtype=np.float32)
    b = rng.random((96, 6), dtype=np.float32)
    digit = (a.sum(1) > b.sum(1)).astype("int32") + (a[:, 0] > 0.8)
    np.savez(folder / "two.npz", a=a, b=b, digit=digit.astype("int32"),
             size=(a - b).sum(1, keepdims=True).astype("float32"))


@pytest.fixture(scope="module")
def two_io(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("two_io")
    two_io_data(folder)
    (folder / "run.yaml").write_text(TWO_IO)
    assert cli("train", folder / "run.yaml", "--runs-dir", folder / "runs", "--quiet") == 0
    return only_run(folder / "runs")


def test_two_inputs_two_outputs_with_a_shared_layer_train_and_log_per_output(two_io):
    rows = read_log(two_io / "log.csv")
    assert len(rows) == 3
    assert {"loss", "digit_loss", "size_loss", "digit_accuracy", "size_mae", "val_loss",
            "val_digit_loss", "val_size_loss", "val_digit_accuracy",
            "val_size_mae"} <= set(rows[0])
    # The checkpoint template names a per-output key, filled in by Keras.
    saved = sorted(p.name for p in (two_io / "checkpoints").iterdir())
    assert len(saved) == 3 and saved[0].startswith("ep01-acc0.")

    import keras

    model = keras.saving.load_model(two_io / "model.keras")
    assert [t.name for t in model.inputs] == ["a", "b"]
    # Applied twice, one set of weights: the graph has one Dense kernel of shape (6, 8).
    kernels = [w for w in model.weights if tuple(w.shape) == (6, 8)]
    assert len(kernels) == 1


@pytest.mark.parametrize("old, new, where, message", [
    ("units: 3, activation: softmax", "units: 2, activation: softmax", "model.layers[3]",
     ("the training labels of output 'digit' run from 0 to 2, but the layer 'digit' has 2 "
     "outputs")),
    ("digit: sparse_categorical_crossentropy", "digit: categorical_crossentropy",
     "compile.loss.digit", ("categorical_crossentropy expects one-hot labels of width 3, but "
     "the training labels of output 'digit' are one class id per sample")),
])
def test_each_output_s_labels_are_checked_against_its_layer_and_loss(tmp_path, capsys, old,
                                                                     new, where, message):
    two_io_data(tmp_path)
    (tmp_path / "run.yaml").write_text(TWO_IO.replace(old, new))
    result = cli_output(capsys, "train", tmp_path / "run.yaml", "--runs-dir", tmp_path / "runs")
    assert result.code == 2
    assert f"{where}: {message}" in result.err, result.err


@pytest.mark.parametrize("old, new, where, message", [
    ("x: {a: a, b: b}", "x: {a: a, bb: b}", "data.x.bb",
     "the model has no input 'bb' (did you mean 'b'?); its inputs: a, b"),
    ("x: {a: a, b: b}", "x: {a: a}", "data.x", "nothing feeds the model's input b"),
    ("y: {digit: digit, size: size}", "y: {digit: digit, sise: size}", "data.y.sise",
     "the model has no output 'sise' (did you mean 'size'?)"),
])
def test_the_data_s_names_are_checked_against_the_graph_before_tensorflow(
        tmp_path, capsys, old, new, where, message):
    (tmp_path / "run.yaml").write_text(TWO_IO.replace(old, new))
    result = cli_output(capsys, "validate", tmp_path / "run.yaml")
    assert result.code == 2
    assert f"{where}: {message}" in result.out, result.out


def test_one_output_named_in_y_trains_like_a_bare_array(tmp_path):
    """y: {name: array} for a graph's only output is that output's array."""
    two_io_data(tmp_path)
    text = (TWO_IO.replace("y: {digit: digit, size: size}", "y: {digit: digit}")
            .replace("outputs: [digit, size]", "outputs: [digit]")
            .replace("loss: {digit: sparse_categorical_crossentropy, size: mse}",
                     "loss: {digit: sparse_categorical_crossentropy}")
            .replace("  loss_weights: {digit: 1.0, size: 0.5}\n", "")
            .replace("metrics: {digit: [accuracy], size: [mae]}", "metrics: {digit: [accuracy]}")
            .replace("    - {name: size, type: Dense, units: 1, inputs: both}\n", "")
            .replace("acc{val_digit_accuracy:.3f}", "acc{val_accuracy:.3f}")
            .replace("monitor: val_size_loss", "monitor: val_loss"))
    (tmp_path / "run.yaml").write_text(text)
    assert cli("train", tmp_path / "run.yaml", "--runs-dir", tmp_path / "runs", "-q") == 0
    assert "val_accuracy" in read_log(only_run(tmp_path / "runs") / "log.csv")[0]


def test_a_per_output_key_is_checked_before_training(tmp_path, capsys):
    text = TWO_IO.replace("monitor: val_size_loss", "monitor: val_size_los")
    path = tmp_path / "run.yaml"
    path.write_text(text)
    assert cli("validate", path) == 2
    out = capsys.readouterr().out
    assert "run.yaml:32:14:" in out and "did you mean 'val_size_loss'" in out
    # Keras's mode: auto matches metric objects by their own name (accuracy), never the
    # logged digit_accuracy: cbrun asks for the mode instead of failing at epoch 1.
    path.write_text(TWO_IO.replace("monitor: val_size_loss\n    mode: min",
                                   "monitor: val_digit_accuracy"))
    assert cli("validate", path) == 2
    assert "write mode: min" in capsys.readouterr().out


# (replace, with, line, column, message part): each graph mistake, located.
GRAPH_MISTAKES = [
    ("inputs: b}", "inputs: bb}", 16, 50, ("takes 'bb', which is neither an input nor a layer "
                                          "(did you mean 'b'?)")),
    ("{name: both, type: Concatenate, inputs: [encode_a, encode_b]}",
     "{name: both, type: Concatenate, inputs: [encode_a, digit]}", 17, 47, "form a cycle"),
    ("{name: size, type: Dense, units: 1, inputs: both}",
     ("{name: size, type: Dense, units: 1, inputs: both}\n    - {name: spare, type: Dense, "
     "units: 2, inputs: both}"), 20, 14, "layer 'spare' is never used"),
    ("outputs: [digit, size]", "outputs: [digit, sise]", 20, 20,
     "output 'sise' is neither a layer nor an input (did you mean 'size'?)"),
    ("{name: size, type: Dense", "{name: digit, type: Dense", 19, 14,
     "the name 'digit' is already taken by an earlier layer"),
    ("{name: encode_b, shares: encode_a", "{name: encode_b, shares: encode_x", 16, 32,
     "shares 'encode_x', which is not a layer (did you mean 'encode_a'?)"),
    ("{name: encode_a, type: Dense, units: 8", "{name: encode_a, type: Dens, units: 8", 15, 30,
     "unknown layer type 'Dens' (did you mean 'Dense'?)"),
    ("loss: {digit: sparse_categorical_crossentropy, size: mse}",
     "loss: {digit: sparse_categorical_crossentropy, siez: mse}", 23, 56,
     "the model has no output 'siez' (did you mean 'size'?)"),
]


@pytest.mark.parametrize("old, new, line, column, part", GRAPH_MISTAKES,
                         ids=["unknown", "cycle", "unused", "output", "duplicate", "shares",
                              "type", "loss-key"])
def test_validate_locates_each_graph_mistake(tmp_path, capsys, old, new, line, column, part):
    assert TWO_IO.count(old) == 1
    path = tmp_path / "run.yaml"
    path.write_text(TWO_IO.replace(old, new))
    assert cli("validate", path) == 2
    out = capsys.readouterr().out
    located = [row for row in out.splitlines() if part in row]
    assert located, out
    assert located[0].startswith(f"{path}:{line}:{column}: "), out


def test_a_layer_that_takes_itself_is_said_once(tmp_path, capsys):
    path = tmp_path / "run.yaml"
    path.write_text(TWO_IO.replace("activation: relu, inputs: a}",
                                   "activation: relu, inputs: [a, encode_a]}"))
    assert cli("validate", path) == 2
    out = capsys.readouterr().out
    assert out.count("encode_a") == 1 and "layer 'encode_a' takes itself" in out, out


def test_graph_validation_never_imports_tensorflow(tmp_path):
    two_io_data(tmp_path)
    (tmp_path / "run.yaml").write_text(TWO_IO.replace("outputs: [digit, size]",
                                                      "outputs: [digit, sise]"))
    result = run_cbrun(["validate", tmp_path / "run.yaml"])
    assert result.codes == [2] and result.heavy == [], result.commands
    assert "did you mean 'size'" in result.commands[0].out


def test_schema_describes_the_graph_form(capsys):
    assert cli("schema") == 0
    schema = json.loads(capsys.readouterr().out)
    kinds = [ref["$ref"].rsplit("/", 1)[1] for ref in schema["properties"]["model"]["oneOf"]]
    assert kinds == ["StackModel", "GraphModel", "FactoryModel", "SavedModel"]
    graph = schema["$defs"]["GraphModel"]
    assert graph["required"] == ["inputs", "layers", "outputs"]
    node = schema["$defs"]["NodeSpec"]["properties"]
    assert {"name", "inputs", "shares", "type"} <= set(node)
    assert "MobileNetV2" in next(b for b in node["type"]["anyOf"] if "enum" in b)["enum"]


# ---------------------------------------------------------------- backbones

BACKBONE = {
    "name": "frozen", "seed": 5,
    "data": {"source": "npz", "path": "images.npz", "validation_split": 0.25,
             "batch_size": 8},
    "model": {
        "inputs": {"image": {"shape": [32, 32, 3]}},
        "layers": [
            {"name": "backbone", "type": "MobileNetV2", "alpha": 0.35, "include_top": False,
             "weights": None, "pooling": "avg", "trainable": False, "inputs": "image"},
            {"name": "head", "type": "Dense", "units": 2, "activation": "softmax",
             "inputs": "backbone"}],
        "outputs": "head"},
    "compile": {"optimizer": {"type": "Adam", "learning_rate": 0.01},
                "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"],
                "jit_compile": False},
    "fit": {"epochs": 2},
}


def test_a_frozen_backbone_trains_its_head_and_keeps_its_weights_bit_for_bit(tmp_path):
    import keras

    rng = np.random.default_rng(1)
    np.savez(tmp_path / "images.npz", x=rng.random((32, 32, 32, 3), dtype=np.float32),
             y=rng.integers(0, 2, 32).astype("int32"))
    path = write_config(tmp_path, BACKBONE)
    assert cli("train", path, "--runs-dir", tmp_path / "runs", "--quiet") == 0
    run = only_run(tmp_path / "runs")
    assert len(read_log(run / "log.csv")) == 2

    from cbrun.config.load import load_config
    from cbrun.engine.model import build_model

    keras.backend.clear_session()
    keras.utils.set_random_seed(5)  # as the run did before building: the same initial weights
    fresh = build_model(load_config(path).config, tmp_path)
    trained = keras.saving.load_model(run / "model.keras")
    before = fresh.get_layer("backbone").get_weights()
    after = trained.get_layer("backbone").get_weights()
    assert len(before) > 200  # every kernel and batch-norm statistic of MobileNetV2
    assert all(np.array_equal(x, y) for x, y in zip(before, after, strict=True))
    head = zip(fresh.get_layer("head").get_weights(), trained.get_layer("head").get_weights(),
               strict=True)
    assert not all(np.array_equal(x, y) for x, y in head)


def test_imagenet_weights_offline_name_the_file_and_the_folder(tmp_path):
    config = json.loads(json.dumps(BACKBONE))
    config["model"]["layers"][0]["weights"] = "imagenet"
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "images.npz", x=rng.random((8, 32, 32, 3), dtype=np.float32),
             y=rng.integers(0, 2, 8).astype("int32"))
    path = write_config(tmp_path, config)
    home = tmp_path / "keras-home"
    # Nothing listens on port 9: the download fails here as it does offline.
    proxy = "http://127.0.0.1:9"
    proc = cbrun_process("train", path, "--runs-dir", tmp_path / "runs", "-q",
                         env={"KERAS_HOME": str(home), "HTTPS_PROXY": proxy,
                              "HTTP_PROXY": proxy, "https_proxy": proxy, "http_proxy": proxy})
    out, err = proc.communicate(timeout=HANG_S)
    assert proc.returncode == 2, out + err
    assert "Traceback" not in out + err
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5" in out + err
    assert str(home / "models") in (out + err).replace("\n", "")


# ---------------------------------------------------------------- exact resume

FACTORY_CODE = textwrap.dedent("""\
    import keras


    def build(units, classes=10):
        inputs = keras.Input((64,))
        x = keras.layers.Rescaling(1 / 16)(inputs)
        x = keras.layers.Dense(units, activation="relu")(x)
        x = keras.layers.Dropout(0.2)(x)
        return keras.Model(inputs, keras.layers.Dense(classes, activation="softmax")(x))
    """)


def _backbone_unfreeze_config() -> dict:
    """A keras.applications backbone frozen for two epochs, then fine-tuned at a lower rate.
    MobileNetV3Small, minimalistic, on 32x32 images: the smallest graph Keras ships; the
    unfreeze retraces it once (seconds), and the epochs after it are short."""
    return {"name": "backbone", "seed": 3,
            "data": {"source": "images", "path": "shapes", "image_size": [32, 32],
                     "validation_split": 0.25, "batch_size": 4},
            "model": {"input_shape": [32, 32, 3], "layers": [
                {"name": "trunk", "type": "MobileNetV3Small", "include_top": False,
                 "weights": None, "pooling": "avg", "alpha": 0.75, "minimalistic": True,
                 "include_preprocessing": False, "trainable": False},
                {"type": "Dense", "units": 2, "activation": "softmax"}],
                "unfreeze": [{"at_epoch": 2, "layers": ["trunk"], "learning_rate": 0.001}]},
            "compile": {"optimizer": {"type": "Adam", "learning_rate": 0.01},
                        "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
            "fit": {"epochs": 6},
            "callbacks": [{"type": "CSVLogger", "filename": "log.csv"}]}


def _unfreeze_config() -> dict:
    config = tiny_config(name="unfreeze", fit={"epochs": 6},
                         callbacks=[{"type": "CSVLogger", "filename": "log.csv"}])
    config["model"]["layers"][1].update({"name": "trunk", "trainable": False})
    config["model"]["unfreeze"] = [{"at_epoch": 2, "layers": ["trunk"],
                                    "learning_rate": 0.002}]
    return config


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    """For an unfreeze stage, a factory model and a saved model: an uninterrupted run and one
    SIGKILLed inside the state write of a given epoch (the newest whole state is the epoch
    before it, and log.csv holds a row resume must redo), then resumed. The kill comes from
    the process itself, at the same point on any machine; it needs a process of its own,
    the rest does not: the uninterrupted runs train in this process while the killed ones
    run, and the resumes follow here too (a process start and a TensorFlow import each
    saved; cbrun starts each run in a process from a clean Keras session, so an earlier run
    here changes nothing)."""
    import keras

    root = tmp_path_factory.mktemp("models_resume")
    (root / "my_models.py").write_text(FACTORY_CODE)
    start = keras.Sequential([keras.Input((64,)), keras.layers.Rescaling(1 / 16),
                              keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    start.save(root / "start.keras")
    write_images(root / "shapes", per_class=8, size=32)
    configs = {
        # unfreeze at epoch 2; killed saving epoch 4's state: resumed after the unfreeze
        "unfreeze": (_unfreeze_config(), 4),
        "backbone": (_backbone_unfreeze_config(), 4),
        "factory": (tiny_config(name="factory", fit={"epochs": 5}, model={
            "factory": "my_models:build", "params": {"units": 24}}), 3),
        "path": (tiny_config(name="path", fit={"epochs": 5},
                             model={"path": "start.keras"}), 3),
    }
    paths = {name: write_config(root, config, f"{name}.yaml")
             for name, (config, _) in configs.items()}
    kills = {name: cbrun_process("train", paths[name], "--runs-dir", root / name / "kill",
                                 "-q", env={FAULT_ENV: str(epoch)})
             for name, (_, epoch) in configs.items()}
    codes = {name: cli("train", path, "--runs-dir", root / name / "base", "-q")
             for name, path in paths.items()}
    killed_codes = {}
    for name, proc in kills.items():
        out, err = proc.communicate(timeout=HANG_S)
        killed_codes[name] = (proc.returncode, out + err)
    resume_codes = {name: cli("resume", only_run(root / name / "kill"))
                    for name in configs}
    return {"root": root, "codes": codes, "killed": killed_codes,
            "resume_codes": resume_codes}


@pytest.mark.parametrize("name", ["unfreeze", "backbone", "factory", "path"])
def test_killed_and_resumed_runs_end_exactly_like_uninterrupted_ones(resumed, name):
    assert resumed["codes"][name] == 0
    assert resumed["killed"][name][0] == -signal.SIGKILL
    assert resumed["resume_codes"][name] == 0
    base = only_run(resumed["root"] / name / "base")
    again = only_run(resumed["root"] / name / "kill")
    assert differences(base, again) == []
    assert (base / "log.csv").read_bytes() == (again / "log.csv").read_bytes()


def test_the_unfreeze_stage_sets_its_rate_and_trains_the_trunk(resumed):
    import keras

    run = only_run(resumed["root"] / "unfreeze" / "base")
    rates = [row["learning_rate"] for row in read_log(run / "log.csv")]
    assert rates[:2] == ["0.009999999776482582"] * 2 and set(rates[2:]) == {
        "0.0020000000949949026"}
    states = {p.name: p for p in (run / "state").iterdir()}
    assert sorted(states) == ["epoch-00005", "epoch-00006"]
    model = keras.saving.load_model(run / "model.keras")
    assert model.get_layer("trunk").trainable


def test_the_resumed_backbone_run_keeps_its_unfreeze_stage(resumed):
    """The resumed run kept the stage across its kill: the backbone's rate from epoch 3 on,
    and a trainable backbone in the final model."""
    run = only_run(resumed["root"] / "backbone" / "kill")
    rates = [row["learning_rate"] for row in read_log(run / "log.csv")]
    assert rates[:2] == ["0.009999999776482582"] * 2
    assert set(rates[2:]) == {"0.0010000000474974513"}

    import keras

    model = keras.saving.load_model(run / "model.keras")
    assert model.get_layer("trunk").trainable


def test_a_lambda_model_is_refused_under_safe_mode(tmp_path, capsys):
    import keras

    inputs = keras.Input((64,))
    outputs = keras.layers.Dense(10, activation="softmax")(
        keras.layers.Lambda(lambda x: x / 16.0)(inputs))
    keras.Model(inputs, outputs).save(tmp_path / "lambda.keras")
    config = tiny_config(name="lambda", fit={"epochs": 1}, model={"path": "lambda.keras"})
    path = write_config(tmp_path, config)
    assert cli("train", path, "--runs-dir", tmp_path / "runs", "--quiet") == 2
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "lambda.keras holds Python code" in text and "safe_mode: false" in text
    assert "Traceback" not in text

    config["model"]["safe_mode"] = False
    path = write_config(tmp_path, config)
    assert cli("train", path, "--runs-dir", tmp_path / "runs2", "--quiet") == 0
    assert "loaded with safe_mode: false" in capsys.readouterr().err


def test_the_memory_network_example_trains(tmp_path):
    config = yaml.safe_load((REPO / "configs" / "memnet.yaml").read_text())
    assert list(config["model"]["inputs"]) == ["story", "question"]
    path = REPO / "configs" / "memnet.yaml"
    assert cli("train", path, "--runs-dir", tmp_path / "runs", "--quiet",
               "--set", "fit.epochs=3") == 0
    rows = read_log(only_run(tmp_path / "runs") / "log.csv")
    assert len(rows) == 3
    assert float(rows[-1]["val_accuracy"]) > 1 / 6  # better than guessing among 6 places


def test_the_memory_network_data_is_what_its_script_writes():
    sys.path.insert(0, str(REPO / "configs"))
    try:
        from memnet_data import make
    finally:
        sys.path.remove(str(REPO / "configs"))
    with np.load(REPO / "configs" / "data" / "memnet.npz") as shipped:
        made = make()
        assert all(np.array_equal(shipped[k], made[k]) for k in made)
    assert os.path.getsize(REPO / "configs" / "data" / "memnet.npz") < 20_000


@pytest.mark.parametrize("change, field, part", [
    (lambda c: c["model"]["unfreeze"][0].update(layers=["trunc"]),
     "model.unfreeze[0].layers[0]", "no layer is named 'trunc' (did you mean 'trunk'?)"),
    (lambda c: c["model"]["layers"][1].pop("trainable"),
     "model.unfreeze[0].layers[0]", "layer 'trunk' is not frozen"),
    (lambda c: c["model"]["unfreeze"][0].update(at_epoch=c["fit"]["epochs"]),
     "model.unfreeze[0].at_epoch", "at_epoch 6 is not before the last epoch (fit.epochs is 6)"),
    (lambda c: c["model"]["layers"][1].update(trainable="no"),
     "model.layers[1].trainable", "trainable must be true or false"),
    (lambda c: c.update(model={"factory": "my_models.build"}),
     "model.factory", "factory must be 'module:function'"),
    (lambda c: c.update(model={"path": "start.h5"}),
     "model.path", "path must be a .keras file"),
    (lambda c: c["compile"].update(loss={"a": "mse", "b": "mse"}),
     "compile.loss", "a stack has one output"),
    (lambda c: c["model"]["layers"].insert(0, {"type": "MobileNetV2", "weights": "places365"}),
     "model.layers[0].weights", "weights must be one of null, imagenet"),
    (lambda c: c["model"].update(input_shap=c["model"].pop("input_shape")),
     "model.input_shap",
     ("unknown key 'input_shap' (did you mean 'input_shape'?); model takes: input_shape, "
     "input_dtype, layers")),
], ids=["unknown-layer", "not-frozen", "too-late", "trainable-text", "factory-path",
        "not-keras-file", "stack-outputs", "backbone-weights", "stack-key"])
def test_other_model_mistakes_are_found_before_tensorflow(tmp_path, capsys, change, field,
                                                          part):
    config = _unfreeze_config()
    change(config)
    assert cli("validate", write_config(tmp_path, config)) == 2
    rows = [row for row in capsys.readouterr().out.splitlines() if f" {field}: " in row]
    assert rows and part in rows[0], rows


def test_a_graph_layer_with_adapt_learns_the_training_split_of_its_input(tmp_path):
    two_io_data(tmp_path)
    text = (TWO_IO.replace("- {name: encode_a, type: Dense, units: 8, activation: relu, inputs: a}",
                           "- {name: norm_a, type: Normalization, adapt: true, inputs: a}\n"
                           "    - {name: encode_a, type: Dense, units: 8, activation: relu, "
                           "inputs: norm_a}")
            .replace("fit:\n  epochs: 3", "fit:\n  epochs: 1"))
    (tmp_path / "run.yaml").write_text(text)
    assert cli("train", tmp_path / "run.yaml", "--runs-dir", tmp_path / "runs", "--quiet") == 0
    import keras

    model = keras.saving.load_model(only_run(tmp_path / "runs") / "model.keras")
    from cbrun.config.load import load_config
    from cbrun.engine.sources import load_splits

    config = load_config(tmp_path / "run.yaml").config
    train_a = load_splits(config.data, tmp_path, seed=config.seed).train.x["a"]
    assert len(train_a) == 72  # validation_split 0.25 of 96 keeps 24 out
    learned = np.asarray(model.get_layer("norm_a").adapt_mean)
    np.testing.assert_allclose(learned, train_a.mean(0), rtol=1e-4)


def test_adapt_on_a_layer_that_learns_nothing_is_refused_at_its_key(tmp_path, capsys):
    path = tmp_path / "run.yaml"
    path.write_text(TWO_IO.replace("{name: size, type: Dense, units: 1,",
                                   "{name: size, type: Dense, adapt: true, units: 1,"))
    assert cli("validate", path) == 2
    out = capsys.readouterr().out
    assert "model.layers[4].adapt" in out and "Dense has nothing to adapt" in out, out


@pytest.mark.parametrize("model, where, message", [
    ({"factory": "my_models:build", "params": {"unitz": 24}}, "model.params.unitz",
     ("build() in my_models.py takes no parameter 'unitz' (did you mean 'units'?); it takes: "
     "units, classes")),
    ({"factory": "my_models:build", "params": {}}, "model.params",
     "build() in my_models.py needs units; give it in params"),
    ({"path": "absent.keras"}, "model.path", "absent.keras does not exist"),
    ({"path": "junk.keras"}, "model.path", "junk.keras is not a .keras file"),
])
def test_factory_params_and_saved_files_are_checked_without_running_them(
        tmp_path, capsys, model, where, message):
    """The factory's source is read, not imported: a module that would fail on import (or
    import TensorFlow) is never run by validate."""
    (tmp_path / "my_models.py").write_text(FACTORY_CODE + "\nraise SystemExit('imported')\n")
    (tmp_path / "junk.keras").write_text("not a zip")
    result = cli_output(capsys, "validate", write_config(tmp_path, tiny_config(model=model)))
    assert result.code == 2
    assert f"{where}: {message}" in result.out, result.out


def _save_archives(folder: Path) -> None:
    """good.keras, and copies of it broken the ways an archive in the wild is."""
    import zipfile

    import keras

    inputs = keras.Input((64,))
    keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(inputs)).save(
        folder / "good.keras")
    with zipfile.ZipFile(folder / "good.keras") as good:
        members = {name: good.read(name) for name in good.namelist()}
    weights = members["model.weights.h5"]
    for name, changed in {
        "no-config": {"config.json": None},
        "list-config": {"config.json": b"[1, 2, 3]"},
        "garbage-config": {"config.json": b"{not json"},
        "no-class": {"config.json": b'{"config": {}}'},
        "no-weights": {"model.weights.h5": None},
        "garbage-weights": {"model.weights.h5": b"these are not weights"},
        "cut-weights": {"model.weights.h5": weights[:len(weights) // 2]},
        "unknown-class": {"config.json": json.dumps(
            {"class_name": "NoSuchModel", "config": {}}).encode()},
    }.items():
        with zipfile.ZipFile(folder / f"{name}.keras", "w") as archive:
            for member, data in {**members, **changed}.items():
                if data is not None:
                    archive.writestr(member, data)


ARCHIVE_PROBLEMS = [
    ("no-config", ("holds no config.json, so it is no saved Keras model (model.save('x.keras') "
                   "writes one); it holds: metadata.json, model.weights.h5")),
    ("list-config", ("has a config.json that holds an array, not a Keras model's config "
                     '({"class_name": ..., "config": {...}})')),
    ("garbage-config", "has a config.json that is not JSON (Expecting property name"),
    ("no-class", "has a config.json without class_name, so it is not a Keras model's config"),
    ("no-weights", "holds no weights (model.weights.h5 or model.weights.npz)"),
    ("garbage-weights", "has weights (model.weights.h5) that are not an HDF5 file"),
    ("cut-weights", "has weights (model.weights.h5) that HDF5 cannot read (Unable to"),
]


@pytest.fixture(scope="module")
def archives(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("archives")
    _save_archives(folder)
    return folder


@pytest.mark.parametrize("name, message", ARCHIVE_PROBLEMS, ids=[n for n, _ in ARCHIVE_PROBLEMS])
def test_a_damaged_model_archive_is_named_by_validate(archives, capsys, name, message):
    path = write_config(archives, tiny_config(model={"path": f"{name}.keras"}), f"{name}.yaml")
    result = cli_output(capsys, "validate", path)
    assert result.code == 2
    assert f"model.path: {name}.keras {message}" in result.out, result.out


def test_archive_checks_never_import_tensorflow(archives):
    path = write_config(archives, tiny_config(model={"path": "cut-weights.keras"}), "cut.yaml")
    result = run_cbrun(["validate", path])
    assert result.codes == [2] and result.heavy == [], result.commands


def test_an_archive_keras_cannot_load_is_one_line_at_model_path(archives, tmp_path, capsys):
    """What only Keras finds (a class it does not know; a layer saved instead of a model)
    is said at model.path when the run starts, without a run directory left behind."""
    import keras
    from keras.src.saving import saving_lib

    layer = keras.layers.Dense(10)
    layer.build((None, 64))
    saving_lib.save_model(layer, archives / "layer.keras")
    for name, message in [
            ("unknown-class", ("Keras could not load {path}: TypeError: Could not locate "
                               "class 'NoSuchModel'")),
            ("layer", "layer.keras holds a Dense, not a model; save the whole model")]:
        config = tiny_config(name=name, fit={"epochs": 1}, model={"path": f"{name}.keras"})
        path = write_config(archives, config, f"{name}.yaml")
        assert cli_output(capsys, "validate", path).code == 0
        result = cli_output(capsys, "train", path, "--runs-dir", tmp_path / name)
        assert result.code == 2
        expected = message.format(path=archives / f"{name}.keras")
        assert f"model.path: {expected}" in result.err, result.err
        assert not any((tmp_path / name).iterdir())
