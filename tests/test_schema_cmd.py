"""`cbrun schema` (JSON Schema for editors) and `cbrun callbacks [NAME]` (the reference)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from conftest import cli_output

from cbrun.callbacks.registry import SPECS
from cbrun.callbacks.unsupported import UnsupportedSpec

DESIGN = """\
name: digits-mlp
seed: 42
data: {source: digits, validation_split: 0.2, batch_size: 32}
model:
  input_shape: [64]
  layers:
    - {type: Dense, units: 128, activation: relu}
    - {type: Dropout, rate: 0.2}
    - {type: Dense, units: 10, activation: softmax}
compile:
  optimizer: {type: Adam, learning_rate: 0.001}
  loss: sparse_categorical_crossentropy
  metrics: [accuracy]
fit: {epochs: 30}
callbacks:
  - {type: EarlyStopping, monitor: val_loss, patience: 5, restore_best_weights: true}
  - type: ModelCheckpoint
    filepath: checkpoints/ep{epoch:03d}-val_loss{val_loss:.3f}.keras
    monitor: val_loss
    save_best_only: true
  - {type: CSVLogger, filename: log.csv}
  - {type: TensorBoard, log_dir: tensorboard, histogram_freq: 1}
  - {type: ReduceLROnPlateau, monitor: val_loss, factor: 0.5, patience: 2}
  - type: LearningRateScheduler
    schedule: {kind: cosine, initial: 0.003, decay_epochs: 20}
"""


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    from cbrun.commands.schema import config_schema

    return config_schema()


def violations(value: Any, schema: dict[str, Any]) -> list[tuple[str, str]]:
    """(JSON path, failing keyword) of every error the `jsonschema` package finds, the
    errors inside a failed oneOf/anyOf branch included: what an editor would flag."""
    from jsonschema import Draft202012Validator

    found = []
    pending = list(Draft202012Validator(schema).iter_errors(value))
    while pending:
        error = pending.pop()
        found.append((error.json_path, error.validator))
        pending.extend(error.context or [])
    return found


def test_the_schema_is_a_valid_2020_12_schema(schema):
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(schema)  # raises SchemaError when it is not


def test_the_design_config_conforms(schema):
    assert violations(yaml.safe_load(DESIGN), schema) == []


@pytest.mark.parametrize("distribute", ["mirrored", "none", "one_device",
                                        {"type": "mirrored", "devices": ["/cpu:0", "/cpu:1"]}])
def test_both_forms_of_distribute_conform(schema, distribute):
    config = yaml.safe_load(DESIGN)
    config["distribute"] = distribute
    assert violations(config, schema) == []
    config["distribute"] = "mirorred"
    assert violations(config, schema) != []


@pytest.mark.parametrize("old, new, path, keyword", [
    ("patience: 5", "patiance: 5", "$.callbacks[0]", "additionalProperties"),
    ("type: Dense, units: 128", "type: Dens, units: 128", "$.model.layers[0].type", "enum"),
    ("patience: 2}", "patience: -2}", "$.callbacks[4].patience", "minimum"),
    ("type: CSVLogger", "type: CSVLoger", "$.callbacks[2]", "oneOf"),
    ("name: digits-mlp", "name: digits mlp", "$.name", "pattern"),
    ("fit: {epochs: 30}", "fit: {}", "$.fit", "required"),
    ("type: CSVLogger", "type: BackupAndRestore", "$.callbacks[2]", "oneOf"),
    ("type: CSVLogger", "type: ProgbarLogger", "$.callbacks[2]", "oneOf"),
    ("factor: 0.5", "factor: 1.5", "$.callbacks[4].factor", "exclusiveMaximum"),
    ("factor: 0.5", "factor: 0", "$.callbacks[4].factor", "exclusiveMinimum"),
    ("save_best_only: true\n", "save_best_only: true\n    save_freq: 0\n",
     "$.callbacks[1].save_freq", "anyOf"),
    ("loss: sparse_categorical_crossentropy", "loss: sparse_crossentropy", "$.compile.loss",
     "enum"),
])
def test_the_schema_flags_common_mistakes(schema, old, new, path, keyword):
    assert DESIGN.count(old) == 1
    found = violations(yaml.safe_load(DESIGN.replace(old, new)), schema)
    assert (path, keyword) in found, found


def test_schema_command_prints_a_2020_12_schema_with_every_callback(capsys):
    code, out, _ = cli_output(capsys, "schema")
    assert code == 0
    doc = json.loads(out)
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert doc["title"] == "cbrun run config"
    assert set(doc["properties"]) == {"name", "seed", "backend", "data", "model", "compile",
                                      "fit", "callbacks", "tracking", "distribute", "extends"}
    mapping = doc["properties"]["callbacks"]["items"]["discriminator"]["mapping"]
    refused = {name for name, cls in SPECS.items() if issubclass(cls, UnsupportedSpec)}
    assert refused >= {"BackupAndRestore", "ProgbarLogger", "History", "BaseLogger",
                       "OrbaxCheckpoint"}
    # Types cbrun refuses are left out, so that an editor flags them as they are typed.
    assert set(mapping) == set(SPECS) - refused
    assert not any(f"{name}Spec" in doc["$defs"] for name in refused)
    spec = doc["$defs"]["ModelCheckpointSpec"]["properties"]["save_freq"]
    assert {"type": "integer", "minimum": 1} in spec["anyOf"]
    assert '"gt"' not in out  # only standard bound keywords reach the editor


def test_schema_output_file(tmp_path, capsys):
    target = tmp_path / "cbrun.schema.json"
    code, _, _ = cli_output(capsys, "schema", "-o", str(target))
    assert code == 0
    assert json.loads(target.read_text())["title"] == "cbrun run config"


def test_schema_help_shows_the_language_server_line(capsys):
    code, out, _ = cli_output(capsys, "schema", "--help")
    assert code == 0 and "# yaml-language-server: $schema=" in out


# ---------------------------------------------------------------- cbrun callbacks

def test_callbacks_lists_every_callback_with_its_summary(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = cli_output(capsys, "callbacks")
    assert code == 0
    for name, cls in SPECS.items():
        row = next(line for line in out.splitlines() if f" {name} " in line)
        assert cls.summary in row


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_parameter_of_every_callback_is_described(name, capsys):
    code, out, _ = cli_output(capsys, "callbacks", name)
    assert code == 0 and out.startswith(name)
    for field, info in SPECS[name].model_fields.items():
        if field != "type":
            assert f"\n  {info.alias or field}  (" in out


def test_callback_page_shows_types_defaults_meaning_and_old_names(capsys):
    code, out, _ = cli_output(capsys, "callbacks", "earlystopping")
    assert code == 0
    assert "  patience  (int >= 0; default 0)\n" in out
    assert "  mode  ('auto' | 'min' | 'max'; default 'auto')\n" in out
    assert "Epochs without improvement after which training stops." in out
    code, out, _ = cli_output(capsys, "callbacks", "ReduceLROnPlateau")
    assert "epsilon: renamed 'min_delta'" in out
    code, out, _ = cli_output(capsys, "callbacks", "ModelCheckpoint")
    assert "  filepath  (str; required)" in out and "\n  period: " in out


def test_refused_types_keep_their_explaining_message_in_validation(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(DESIGN.replace("type: CSVLogger", "type: BackupAndRestore"))
    code, out, _ = cli_output(capsys, "validate", str(path))
    assert code == 2 and "cbrun resume runs/<id>" in out


def test_learning_rate_scheduler_page_lists_every_schedule_kind_and_its_fields(capsys):
    from cbrun.callbacks.schedules import (
        CosineSchedule,
        ExponentialSchedule,
        PiecewiseSchedule,
        StepSchedule,
    )

    code, out, _ = cli_output(capsys, "callbacks", "LearningRateScheduler")
    assert code == 0 and ".py" not in out
    sections = out.split("\n  kind: ")[1:]
    assert [s.split("\n")[0] for s in sections] == ["step", "exponential", "cosine",
                                                     "piecewise"]
    for text, model in zip(sections, (StepSchedule, ExponentialSchedule, CosineSchedule,
                                      PiecewiseSchedule)):
        for name, field in model.model_fields.items():
            if name != "kind":
                assert f"\n    {name}  (" in text, (name, text)
                assert " ".join(field.description.split()[:4]) in " ".join(text.split())
    assert "    every  (int > 0; required)\n        Epochs between two drops." in out
    assert "    alpha  (float >= 0, <= 1; default 0.0)\n" in out
    assert "    warmup_epochs  (int >= 0; default 0)\n" in out


def test_unknown_callback_name_suggests(capsys):
    code, _, err = cli_output(capsys, "callbacks", "EarlyStoping")
    assert code == 2 and "did you mean 'EarlyStopping'" in err


def test_a_file_that_extends_others_needs_only_what_it_changes(schema):
    """An editor flags a whole config that lacks `model:`, not a file that `extends:` one
    and changes two values (docs/config.md's long.yaml)."""
    partial = {"extends": "base.yaml", "fit": {"epochs": 80}}
    assert violations(partial, schema) == []
    assert violations({"extends": ["base.yaml", "data.yaml"], "fit": {"epochs": 80}},
                      schema) == []
    assert ("$", "required") in violations({"fit": {"epochs": 80}}, schema)
    assert ("$.extends", "anyOf") in violations({**partial, "extends": 3}, schema)
    assert ("$.fit", "additionalProperties") in violations(
        {"extends": "base.yaml", "fit": {"epocs": 80}}, schema)
