"""`cbrun validate --build`: the mistakes plain validate cannot see (they need the model
built and the data read) found without training, each at its line, every config's in one
run; and no run directory is made."""

from __future__ import annotations

import json

from conftest import cli_output, tiny_config, write_config


def _configs(tmp_path):
    shape = tiny_config(name="shape")
    shape["model"]["input_shape"] = [63]
    units = tiny_config(name="units")
    units["model"]["layers"][-1]["units"] = 8
    # A factory's input shape is in Python: only building the model shows it.
    (tmp_path / "my_models.py").write_text(
        "import keras\n\n\ndef build(width):\n"
        "    inputs = keras.Input((width,))\n"
        "    return keras.Model(inputs, keras.layers.Dense(10, activation='softmax')(inputs))\n")
    factory = tiny_config(name="factory", model={"factory": "my_models:build",
                                                 "params": {"width": 63}})
    binary = tiny_config(name="binary")  # ten classes through one sigmoid unit
    binary["model"]["layers"][-1] = {"type": "Dense", "units": 1, "activation": "sigmoid"}
    binary["compile"]["loss"] = "binary_crossentropy"
    conv = tiny_config(name="conv")
    conv["model"]["layers"][1] = {"type": "Conv2D", "filters": 4, "kernel_size": 3}
    return {name: write_config(tmp_path, cfg, f"{name}.yaml")
            for name, cfg in (("shape", shape), ("units", units), ("conv", conv),
                              ("factory", factory), ("binary", binary),
                              ("good", tiny_config(name="good")))}


def _line(path, text: str, item: bool = False) -> int:
    """The line holding `text`; item: the line starting the list item that holds it."""
    lines = path.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if text in line)
    while item and not lines[at].lstrip().startswith("- "):
        at -= 1
    return at + 1


def test_plain_validate_passes_what_only_the_built_model_shows(tmp_path, capsys):
    paths = _configs(tmp_path)
    code, out, _err = cli_output(capsys, "validate", paths["units"], paths["conv"],
                                 paths["factory"], paths["binary"])
    assert code == 0, out


def test_build_names_each_mistake_at_the_line_that_set_it(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    paths = _configs(tmp_path)
    code, out, _err = cli_output(capsys, "validate", "--build", *(p.name for p in paths.values()))
    assert code == 2
    shape_line = _line(paths["shape"], "- 63")
    assert (f"shape.yaml:{shape_line}:" in out and "the training samples have shape [64], but "
            "the model expects input_shape [63]" in out), out
    units_line = _line(paths["units"], "units: 8", item=True)
    assert f"units.yaml:{units_line}:" in out and "the last layer has 8 outputs" in out, out
    conv_line = _line(paths["conv"], "type: Conv2D", item=True)
    assert f"conv.yaml:{conv_line}:" in out and "Keras refused Conv2D" in out, out
    assert "factory.yaml" in out and "the model expects input_shape [63]" in out, out
    loss_line = _line(paths["binary"], "loss: binary_crossentropy")
    assert (f"binary.yaml:{loss_line}:" in out and "binary_crossentropy takes labels 0 and 1 "
            "(or probabilities), but the training labels run from 0 to 9; for 10 classes use "
            "sparse_categorical_crossentropy" in out), out
    assert ("ok  good.yaml" in out and "built: input (batch, 64) -> output (batch, 10), 2,410 "
            "parameters" in out), out
    assert not (tmp_path / "runs").exists()


def test_build_reports_the_built_shapes_as_json(tmp_path, capsys):
    path = write_config(tmp_path, tiny_config())
    code, out, _err = cli_output(capsys, "validate", "--build", "--json", path)
    assert code == 0, out
    (found,) = json.loads(out)["files"]
    assert found["built"] == {"inputs": [[None, 64]], "outputs": [[None, 10]],
                              "parameters": 2410, "backend": "tensorflow"}


def test_build_says_when_a_config_too_wrong_to_build_was_not_built(tmp_path, capsys):
    path = write_config(tmp_path, tiny_config(fit={"epochs": 0}))
    code, out, _err = cli_output(capsys, "validate", "--build", path)
    assert code == 2
    assert "fit.epochs" in out and "(the model was not built: the config must be valid " \
        "first)" in out, out
