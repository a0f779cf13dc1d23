"""Config errors name the file, line, column and field, say what is allowed, and come all
at once: YAML safety, schema messages, old Keras names, monitor checks."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml
from conftest import BASE_YAML, cli_output

from cbrun.config.load import load_config
from cbrun.config.monitors import logged_keys, monitor_direction, primary_monitor
from cbrun.config.yamlio import MAX_CONFIG_BYTES
from cbrun.errors import ConfigError, Problem

BASE = BASE_YAML


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problems(tmp_path: Path, text: str) -> list[Problem]:
    with pytest.raises(ConfigError) as raised:
        load_config(write(tmp_path, text))
    return raised.value.problems


def one(tmp_path: Path, text: str) -> Problem:
    found = problems(tmp_path, text)
    assert len(found) == 1, [p.render() for p in found]
    return found[0]


def with_callbacks(callbacks: str, base: str = BASE) -> str:
    return base + "callbacks:\n" + textwrap.indent(textwrap.dedent(callbacks), "  ")


# ---------------------------------------------------------------- YAML safety and strictness

def test_a_repeated_key_is_an_error_at_the_second_one(tmp_path):
    problem = one(tmp_path, BASE.replace("  epochs: 2\n", "  epochs: 2\n  epochs: 5\n"))
    assert (problem.line, problem.column, problem.field_path) == (13, 3, "fit.epochs")
    assert "first on line 12" in problem.message


def test_every_problem_of_the_text_is_reported_at_once(tmp_path):
    text = BASE.replace("name: t", "name: t\nname: u").replace(
        "  epochs: 2", "  epochs: !!python/object/apply:os.system ['true']")
    found = problems(tmp_path, text)
    assert [(p.line, p.field_path) for p in found] == [(2, "name"), (13, "fit.epochs")]
    assert "Python object" in found[1].message and "run code" in found[1].message


def test_python_tags_are_refused_without_running_anything(tmp_path):
    marker = tmp_path / "ran"
    text = BASE + f"seed: !!python/object/apply:os.system ['touch {marker}']\n"
    problem = one(tmp_path, text)
    assert problem.line == 13 and problem.column == 7
    assert not marker.exists()


def test_unknown_tag(tmp_path):
    problem = one(tmp_path, BASE + "seed: !env SEED\n")
    assert "unknown YAML tag !env" in problem.message and problem.line == 13


def test_yes_and_on_are_the_same_key_and_the_hint_says_why(tmp_path):
    problem = one(tmp_path, BASE + "on: 1\nyes: 2\n")
    assert problem.line == 14 and "quote the key" in problem.hint


@pytest.mark.parametrize("text, fragment", [
    ("", "empty"),
    ("   \n\n", "empty"),
    ("# only a comment\n", "only comments"),
    ("- a\n- b\n", "not a list"),
    ("just words\n", "not a string"),
    ("~\n", "not null"),
])
def test_not_a_mapping(tmp_path, text, fragment):
    problem = one(tmp_path, text)
    assert fragment in problem.message and problem.line == 1


def test_binary_file_names_the_nul_byte(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"name: t\nseed: 4\x002\n")
    with pytest.raises(ConfigError, match="binary") as raised:
        load_config(path)
    assert (raised.value.problems[0].line, raised.value.problems[0].column) == (2, 8)


def test_not_utf8(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8") as raised:
        load_config(path)
    assert raised.value.problems[0].line == 1


def test_huge_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"#" * (MAX_CONFIG_BYTES + 1))
    with pytest.raises(ConfigError, match="at most 1,000,000 bytes"):
        load_config(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="directory"):
        load_config(tmp_path)


def test_control_character(tmp_path):
    problem = one(tmp_path, "name: t\x07\n")
    assert "control character" in problem.message and (problem.line, problem.column) == (1, 8)


def test_deep_nesting_and_alias_bombs_are_refused(tmp_path):
    assert "nest" in one(tmp_path, "a: " + "[" * 3000 + "\n").message
    bomb = "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
    for name, prev in zip("bcdef", "abcde"):
        bomb += f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]\n"
    assert "aliases are expanded" in one(tmp_path, bomb).message


def test_a_recursive_alias_is_reported_where_it_is_used(tmp_path):
    problem = one(tmp_path, BASE.replace("  layers:\n", "  layers: &l\n    - *l\n"))
    assert (problem.line, problem.column, problem.field_path) == (6, 7, "model.layers[0]")


def test_yaml_syntax_error_has_a_position_and_hint(tmp_path):
    problem = one(tmp_path, BASE.replace("  epochs: 2", "\tepochs: 2"))
    assert problem.line == 12 and "tab" in problem.hint


def test_values_merged_from_an_anchor_are_reported_at_the_anchor(tmp_path):
    text = with_callbacks("""\
        - &stop {type: EarlyStopping, patience: -1}
        - {<<: *stop, monitor: val_accuracy}
    """)
    found = problems(tmp_path, text)
    assert [(p.line, p.field_path) for p in found] == [
        (14, "callbacks[0].patience"), (14, "callbacks[1].patience")]


# ---------------------------------------------------------------- schema messages

def test_a_valid_file_loads_with_every_default_filled_in(tmp_path):
    loaded = load_config(write(tmp_path, BASE))
    config = loaded.config
    assert (config.name, config.fit.epochs, config.compile.metric_names()) == (
        "t", 2, ["accuracy"])
    assert (config.seed, config.callbacks, config.compile.steps_per_execution) == (
        42, [], "auto")
    assert loaded.config_dir == tmp_path


def test_unknown_key_suggests_and_lists_what_is_allowed(tmp_path):
    problem = one(tmp_path, BASE.replace("  epochs: 2", "  epochs: 2\n  validaton_freq: 2"))
    assert (problem.line, problem.column) == (13, 3)
    assert "did you mean 'validation_freq'" in problem.message
    assert "fit takes: epochs, steps_per_epoch, validation_freq, validation_steps, " \
        "overfit_batches, class_weight, state_every, max_time" in problem.message
    assert "(given" not in problem.render()


def test_unknown_callback_type_points_at_type(tmp_path):
    problem = one(tmp_path, with_callbacks("- {type: ReduceLrOnPlateau}\n"))
    assert problem.field_path == "callbacks[0].type" and problem.column == 12
    assert "did you mean 'ReduceLROnPlateau'" in problem.message


def test_unknown_schedule_kind_suggests(tmp_path):
    problem = one(tmp_path, with_callbacks("""\
        - type: LearningRateScheduler
          schedule: {kind: cosin, initial: 0.1, decay_epochs: 3}
    """))
    assert problem.field_path == "callbacks[0].schedule.kind"
    assert "did you mean 'cosine'" in problem.message


def test_missing_key_says_what_it_is(tmp_path):
    problem = one(tmp_path, BASE.replace("fit:\n  epochs: 2\n", "fit: {}\n"))
    assert problem.field_path == "fit.epochs" and problem.line == 11
    assert "needs 'epochs'" in problem.message and "Epochs to train" in problem.message


def test_wrong_type_shows_what_was_given(tmp_path):
    problem = one(tmp_path, BASE.replace("epochs: 2", "epochs: [2]"))
    assert problem.field_path == "fit.epochs" and "valid integer" in problem.message


def test_problems_come_sorted_by_line(tmp_path):
    text = with_callbacks("- {type: EarlyStopping, patiance: 1}\n",
                          BASE.replace("name: t", "name: t t").replace("units: 10", "unit: 10"))
    lines = [p.line for p in problems(tmp_path, text)]
    assert lines == sorted(lines) and len(lines) == 3


def test_monitor_problems_are_reported_even_when_another_section_is_wrong(tmp_path):
    text = with_callbacks("- {type: EarlyStopping, monitor: val_acuracy}\n",
                          BASE.replace("units: 10", "unit: 10"))
    found = problems(tmp_path, text)
    assert [p.field_path for p in found] == ["model.layers[0].unit", "callbacks[0].monitor"]


# ---------------------------------------------------------------- old Keras names

def test_renamed_parameter_shows_the_corrected_line_in_its_own_style(tmp_path):
    problem = one(tmp_path, BASE.replace("learning_rate: 0.001", "lr: 0.001"))
    assert (problem.line, problem.column) == (8, 27)
    assert problem.hint == "write line 8 as:  optimizer: {type: Adam, learning_rate: 0.001}"


def test_a_renamed_value_is_still_checked_at_the_old_name(tmp_path):
    found = problems(tmp_path, with_callbacks("""\
        - type: ReduceLROnPlateau
          monitor: val_loss
          epsilon: -1
    """))
    assert [(p.line, p.field_path) for p in found] == [
        (16, "callbacks[0].epsilon"), (16, "callbacks[0].min_delta")]


PLATEAU = "callbacks:\n  - {type: ReduceLROnPlateau, epsilon: 0.1, min_delta: 0.01}\n"


@pytest.mark.parametrize("before, after, already", [
    ("{type: Adam, learning_rate: 0.001}", "{type: Adam, lr: 0.1, learning_rate: 0.001}",
     "'learning_rate' is already set (0.001)"),
    ("  epochs: 2\n", "  epochs: 2\n  nb_epoch: 3\n", "'epochs' is already set (2)"),
    ("  epochs: 2\n", "  epochs: 2\n" + PLATEAU, "'min_delta' is already set (0.01)"),
])
def test_an_old_name_beside_its_new_name_asks_to_remove_one(tmp_path, before, after, already):
    # Renamed, the line would hold the key twice, which YAML refuses: no corrected line.
    problem = one(tmp_path, BASE.replace(before, after))
    assert f"{already}, so remove one of them" in problem.message
    assert problem.hint is None


def test_period_one_has_an_exact_replacement_and_period_five_has_not(tmp_path):
    one_ = one(tmp_path, with_callbacks("- {type: ModelCheckpoint, filepath: m.keras, "
                                        "period: 1}\n"))
    assert "save_freq: epoch" in one_.hint
    five = one(tmp_path, with_callbacks("- {type: ModelCheckpoint, filepath: m.keras, "
                                        "period: 5}\n"))
    assert five.hint is None and "cannot save every 5 epochs" in five.message
    both = one(tmp_path, with_callbacks("- {type: ModelCheckpoint, filepath: m.keras, "
                                        "period: 1, save_freq: 10}\n"))
    assert both.hint is None and "save_freq replaces it and is already set" in both.message


def test_h5_checkpoints_get_the_suffix_that_fits(tmp_path):
    model = one(tmp_path, with_callbacks("- {type: ModelCheckpoint, filepath: m.h5}\n"))
    assert model.hint.endswith("filepath: m.keras}")
    weights = one(tmp_path, with_callbacks(
        "- {type: ModelCheckpoint, filepath: 'w{epoch}.hdf5', save_weights_only: true}\n"))
    assert "'w{epoch}.weights.h5'" in weights.hint


def test_acc_is_fine_when_the_metric_is_written_acc(tmp_path):
    text = with_callbacks("- {type: EarlyStopping, monitor: val_acc}\n",
                          BASE.replace("metrics: [accuracy]", "metrics: [acc]"))
    config = loaded(tmp_path, text)
    assert "val_acc" in logged_keys(config)
    assert primary_monitor(config) == ("val_acc", "max")  # accuracy goes up


def test_keras1_layer_names(tmp_path):
    text = BASE.replace("{type: Dense, units: 10, activation: softmax}",
                        "{type: Dense, output_dim: 10, init: glorot_uniform}")
    found = problems(tmp_path, text)
    assert [p.field_path for p in found] == ["model.layers[0].output_dim",
                                             "model.layers[0].init"]
    assert "kernel_initializer" in found[1].message
    renamed = one(tmp_path, BASE.replace("{type: Dense, units: 10, activation: softmax}",
                                         "{type: Deconvolution2D, filters: 3, kernel_size: 3}"))
    assert "'Conv2DTranspose'" in renamed.message


def test_names_keras3_still_has_are_not_legacy(tmp_path):
    text = BASE.replace("  layers:\n", "  layers:\n    - {type: Reshape, target_shape: [8, 8, 1]}"
                        "\n    - {type: Convolution2D, filters: 2, kernel_size: 3}\n"
                        "    - {type: Flatten}\n")
    config = loaded(tmp_path, text)
    # Kept as written: Keras 3 still has the alias, so nothing is renamed.
    assert [layer.type for layer in config.model.layers[:3]] == [
        "Reshape", "Convolution2D", "Flatten"]


# ---------------------------------------------------------------- monitors

def loaded(tmp_path: Path, text: str):
    return load_config(write(tmp_path, text)).config


def test_logged_keys(tmp_path):
    assert logged_keys(loaded(tmp_path, BASE)) == [
        "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"]
    no_val = BASE.replace("data: {source: digits, validation_split: 0.2}", "data: {}")
    assert logged_keys(loaded(tmp_path, no_val)) == ["loss", "accuracy", "learning_rate"]


def test_primary_monitor(tmp_path):
    assert primary_monitor(loaded(tmp_path, BASE)) == ("val_loss", "min")
    text = with_callbacks("""\
        - {type: ModelCheckpoint, filepath: m.keras}
        - {type: EarlyStopping, monitor: val_accuracy}
    """)
    assert primary_monitor(loaded(tmp_path, text)) == ("val_accuracy", "max")


def test_checkpoint_without_save_best_only_ignores_its_monitor(tmp_path):
    text = with_callbacks("- {type: ModelCheckpoint, filepath: m.keras}\n",
                          BASE.replace("validation_split: 0.2", "validation_split: 0.0"))
    config = loaded(tmp_path, text)
    # The default val_loss is never logged here, and that is fine: Keras reads it only with
    # save_best_only. The run's summary metric is then the training loss.
    assert config.callbacks[0].monitor == "val_loss" and not config.callbacks[0].save_best_only
    assert "val_loss" not in logged_keys(config)
    assert primary_monitor(config) == ("loss", "min")


def test_a_renamed_metric_takes_its_direction_from_its_class(tmp_path):
    text = with_callbacks("- {type: EarlyStopping, monitor: val_my_auc}\n",
                          BASE.replace("metrics: [accuracy]",
                                       "metrics: [{type: AUC, name: my_auc}]"))
    config = loaded(tmp_path, text)
    assert monitor_direction(config.compile, "val_my_auc") == "up"
    assert primary_monitor(config) == ("val_my_auc", "max")


@pytest.mark.parametrize("callback, field, fragment", [
    ("{type: EarlyStopping, monitor: val_false_negatives}", "callbacks[0].monitor",
     "mode: min (lower is better) or mode: max"),
    ("{type: EarlyStopping, monitor: val_false_negatives, mode: auto}", "callbacks[0].mode",
     "Keras knows no direction"),
    ("{type: EarlyStopping, monitor: val_accuracy, mode: min}", "callbacks[0].mode",
     "write mode: max"),
    ("{type: ReduceLROnPlateau, monitor: learning_rate}", "callbacks[0].monitor",
     "not a metric"),
    ("{type: ModelCheckpoint, filepath: 'm{loss:.2f}{epoch}{val_f1:.2f}.keras'}",
     "callbacks[0].filepath", "uses {val_f1}, which this run never logs"),
])
def test_mode_and_template_checks(tmp_path, callback, field, fragment):
    base = BASE.replace("metrics: [accuracy]", "metrics: [accuracy, false_negatives]")
    problem = one(tmp_path, with_callbacks(f"- {callback}\n", base))
    assert problem.field_path == field and fragment in problem.message


@pytest.mark.parametrize("callback", [
    "{type: EarlyStopping, monitor: val_false_negatives, mode: min}",
    "{type: EarlyStopping, monitor: val_accuracy, mode: max}",
    "{type: ReduceLROnPlateau, monitor: learning_rate, mode: min}",
    "{type: EarlyStopping, monitor: loss}",
])
def test_consistent_modes_pass(tmp_path, callback):
    base = BASE.replace("metrics: [accuracy]", "metrics: [accuracy, false_negatives]")
    config = loaded(tmp_path, with_callbacks(f"- {callback}\n", base))
    spec = config.callbacks[0]
    name, mode = primary_monitor(config)
    assert name == spec.monitor
    # The mode as written, or for auto the direction Keras will infer.
    assert mode == (spec.mode if spec.mode != "auto" else "min")


def test_exponent_floats_without_a_dot_are_numbers():
    """PyYAML (YAML 1.1) reads `1e-3` as a string; the learning rate every tutorial writes
    that way must be the number 0.001, and a quoted "1e-3" must stay text."""
    from cbrun.config.yamlio import load_yaml_text

    data = load_yaml_text('a: 1e-3\nb: -2E+5\nc: "1e-3"\nd: 12\n', "x.yaml").data
    assert data == {"a": 0.001, "b": -200000.0, "c": "1e-3", "d": 12}


# ---------------------------------------------------------------- layer arguments

LAYER = "{type: Dense, units: 10, activation: softmax}"


@pytest.mark.parametrize("layer, field, fragments", [
    ("{type: Dense, units: 10, activation: Softmax}", "activation",
     ["'Softmax' is not a Keras activation", "did you mean 'softmax'"]),
    ("{type: Dense, units: 10, activation: relu6x}", "activation", ["'relu6'"]),
    ("{type: Dense, units: 10, activation: [relu]}", "activation",
     ["must be the name of a Keras activation"]),
    ("{type: LSTM, units: 4, recurrent_activation: Sigmoid}", "recurrent_activation",
     ["did you mean 'sigmoid'"]),
    ("{type: Dense, units: 10, kernel_initializer: glorot_unifrom}", "kernel_initializer",
     ["not a Keras initializer", "did you mean 'glorot_uniform'"]),
    ("{type: Dense, units: 10, kernel_regularizer: l3}", "kernel_regularizer",
     ["not a Keras regularizer"]),
    ("{type: Dense, units: 10, bias_constraint: nonneg}", "bias_constraint",
     ["did you mean 'non_neg'"]),
    ("{type: Dense, units: '10'}", "units",
     ["units must be a positive integer, got the string '10'", "without quotes"]),
    ("{type: Dense, units: 0}", "units", ["positive integer, got 0"]),
    ("{type: Dense, units: 2.5}", "units", ["positive integer, got 2.5"]),
    ("{type: Conv1D, filters: -3, kernel_size: 3}", "filters", ["positive integer"]),
    ("{type: Dropout, rate: 1.0}", "rate", ["a number in [0, 1)", "got 1.0"]),
    ("{type: SpatialDropout1D, rate: -0.1}", "rate", ["[0, 1)"]),
    ("{type: Dropout, rate: '0.2'}", "rate", ["got the string '0.2'"]),
    ("{type: LSTM, units: 4, recurrent_dropout: 1.5}", "recurrent_dropout", ["[0, 1)"]),
])
def test_well_known_layer_arguments_are_checked_without_keras(tmp_path, layer, field,
                                                              fragments):
    problem = one(tmp_path, BASE.replace(LAYER, layer))
    assert problem.field_path == f"model.layers[0].{field}"
    value_at = len("    - ") + layer.index(f" {field}: ") + len(f" {field}: ") + 1
    assert (problem.line, problem.column) == (6, value_at)
    for fragment in fragments:
        assert fragment in problem.message, problem.message


@pytest.mark.parametrize("layer", [
    "{type: Dense, units: 10, activation: null}",
    "{type: Dense, units: 10, activation: swish, kernel_initializer: HeNormal}",
    "{type: Dense, units: 10, kernel_initializer: {class_name: Ones, config: {}}}",
    "{type: Dense, units: 10, kernel_regularizer: l2, kernel_constraint: max_norm}",
    "{type: Dropout, rate: 0}",
    "{type: Activation, activation: tanh}",
])
def test_good_layer_arguments_pass(tmp_path, layer):
    config = loaded(tmp_path, BASE.replace(LAYER, layer))
    written = yaml.safe_load(layer)
    built = config.model.layers[-1]
    # Every argument reaches Keras as written: none dropped or rewritten.
    assert (built.type, built.kwargs) == (written.pop("type"), written)


def test_every_bad_layer_argument_is_reported_at_once(tmp_path):
    text = BASE.replace(LAYER, "{type: Dense, units: '10', activation: Softmax}\n"
                               "    - {type: Dropout, rate: 1}")
    found = problems(tmp_path, text)
    assert [p.field_path for p in found] == ["model.layers[0].units",
                                             "model.layers[0].activation",
                                             "model.layers[1].rate"]


# ---------------------------------------------------------------- keys in the wrong section

NO_SPLIT = BASE.replace("data: {source: digits, validation_split: 0.2}", "data: {}")


@pytest.mark.parametrize("line, field, fragments", [
    ("  validation_split: 0.2", "fit.validation_split", ["data.validation_split"]),
    ("  batch_size: 64", "fit.batch_size", ["data.batch_size"]),
    ("  shuffle: false", "fit.shuffle", ["data.shuffle"]),
    ("  validation_data: val.npz", "fit.validation_data", ["data.validation_path"]),
    ("  verbose: 2", "fit.verbose", ["cbrun draws its own progress", "--quiet"]),
    ("  callbacks: [{type: TerminateOnNaN}]", "fit.callbacks", ["a section of their own"]),
])
def test_model_fit_arguments_in_fit_name_their_place(tmp_path, line, field, fragments):
    problem = one(tmp_path, NO_SPLIT.replace("  epochs: 2\n", f"  epochs: 2\n{line}\n"))
    assert (problem.field_path, problem.line, problem.column) == (field, 13, 3)
    assert f"'{field.split('.')[1]}' is an argument of model.fit()" in problem.message
    for fragment in fragments:
        assert fragment in problem.message + (problem.hint or "")


def test_a_moved_value_is_checked_at_its_new_place_where_it_was_written(tmp_path):
    found = problems(tmp_path, NO_SPLIT.replace("  epochs: 2\n",
                                                "  epochs: 2\n  validation_split: 2\n"))
    assert [(p.field_path, p.line) for p in found] == [("fit.validation_split", 13),
                                                       ("data.validation_split", 13)]
    assert found[0].hint == "move it under `data:` as  validation_split: 2"
    # With validation data moved in place, val_ monitors are fine: no second complaint.
    text = with_callbacks("- {type: EarlyStopping, monitor: val_loss}\n", NO_SPLIT.replace(
        "  epochs: 2\n", "  epochs: 2\n  validation_split: 0.1\n"))
    assert one(tmp_path, text).field_path == "fit.validation_split"


@pytest.mark.parametrize("line, field, hint", [
    ("validation_split: 0.2", "data.validation_split",
     "move it under `data:` as  validation_split: 0.2"),
    ("steps_per_execution: 5", "compile.steps_per_execution",
     "move it under `compile:` as  steps_per_execution: 5"),
    ("epochs: 3", "fit.epochs", None),  # fit.epochs is set: "remove this one"
])
def test_a_section_key_at_the_top_level_names_its_section(tmp_path, line, field, hint):
    key = line.split(":")[0]
    problem = one(tmp_path, NO_SPLIT + f"{line}\n")
    assert problem.field_path == key
    assert f"'{key}' is not a top-level key: cbrun reads it from {field}" in problem.message
    assert problem.hint == hint
    assert ("already set" in problem.message) == (hint is None)


def test_a_section_key_moved_from_the_top_level_is_checked_at_its_place(tmp_path):
    found = problems(tmp_path, NO_SPLIT + "validation_split: 7\n")
    assert [p.field_path for p in found] == ["validation_split", "data.validation_split"]


def test_fit_callbacks_are_checked_as_the_callbacks_section(tmp_path):
    text = NO_SPLIT.replace("  epochs: 2\n", "  epochs: 2\n  callbacks:\n"
                                             "    - {type: EarlyStopping, patience: -1}\n")
    found = problems(tmp_path, text)
    assert [(p.field_path, p.line) for p in found] == [("fit.callbacks", 13),
                                                       ("callbacks[0].patience", 14)]


def test_a_key_set_in_both_places_asks_to_remove_one(tmp_path):
    problem = one(tmp_path, BASE.replace("  epochs: 2\n", "  epochs: 2\n  batch_size: 8\n")
                  .replace("validation_split: 0.2}", "validation_split: 0.2, batch_size: 4}"))
    assert "data.batch_size is already set (4), so remove this one" in problem.message
    assert problem.hint is None


@pytest.mark.parametrize("key", ["learning_rate", "lr"])
@pytest.mark.parametrize("optimizer, hint", [
    ("  optimizer: sgd\n", "optimizer: {type: SGD, learning_rate: 0.01}"),
    ("", "optimizer: {type: Adam, learning_rate: 0.01}"),
    ("  optimizer: {type: RMSprop}\n", "optimizer: {type: RMSprop, learning_rate: 0.01}"),
])
def test_compile_learning_rate_belongs_to_the_optimizer(tmp_path, key, optimizer, hint):
    text = BASE.replace("  optimizer: {type: Adam, learning_rate: 0.001}\n",
                        optimizer + f"  {key}: 0.01\n")
    problem = one(tmp_path, text)
    assert problem.field_path == f"compile.{key}"
    assert "compile.optimizer.learning_rate" in problem.message
    assert problem.hint == f"write the optimizer as:  {hint}"


def test_a_moved_learning_rate_is_still_checked(tmp_path):
    text = BASE.replace("  optimizer: {type: Adam, learning_rate: 0.001}\n",
                        "  optimizer: adam\n  learning_rate: -1\n")
    found = problems(tmp_path, text)
    assert [(p.field_path, p.line) for p in found] == [
        ("compile.learning_rate", 9), ("compile.optimizer.learning_rate", 9)]
    assert "must be a number >= 0" in found[1].message


# ---------------------------------------------------------------- suggestions

def test_a_swap_of_two_letters_beats_a_longer_name():
    from cbrun.config import keras_api
    from cbrun.suggest import close_matches, did_you_mean

    assert close_matches("Adma", keras_api.api()["optimizers"])[0] == "Adam"
    assert did_you_mean("Dropuot", keras_api.api()["layers"]) == " (did you mean 'Dropout'?)"
    assert did_you_mean("lr", ["loss", "val_loss", "learning_rate"]) == \
        " (did you mean 'learning_rate'?)"
    assert close_matches("Adam", keras_api.api()["optimizers"]) == []
    assert close_matches("x.npz", []) == []


def test_optimizer_and_monitor_suggestions_in_a_config(tmp_path):
    problem = one(tmp_path, BASE.replace("type: Adam,", "type: Adma,"))
    assert "did you mean 'Adam'" in problem.message
    problem = one(tmp_path, with_callbacks("- {type: ReduceLROnPlateau, monitor: lr, "
                                           "mode: min}\n"))
    assert "did you mean 'learning_rate'" in problem.message


# ---------------------------------------------------------------- one corrected line per line

def test_two_old_names_on_one_line_get_one_corrected_line(tmp_path):
    found = problems(tmp_path, BASE.replace(
        LAYER, "{type: Dense, output_dim: 10, init: uniform, activation: softmax}"))
    assert [p.field_path for p in found] == ["model.layers[0].output_dim",
                                             "model.layers[0].init"]
    expected = ("write line 6 as:  - {type: Dense, units: 10, kernel_initializer: uniform, "
                "activation: softmax}")
    assert [p.hint for p in found] == [expected, expected]


def test_a_removed_name_gets_no_line_and_is_gone_from_the_others(tmp_path):
    found = problems(tmp_path, BASE.replace("{type: Adam, learning_rate: 0.001}",
                                            "{type: SGD, lr: 0.1, decay: 1e-6}"))
    assert [p.field_path for p in found] == ["compile.optimizer.lr", "compile.optimizer.decay"]
    assert found[0].hint == "write line 8 as:  optimizer: {type: SGD, learning_rate: 0.1}"
    assert found[1].hint is None
    found = problems(tmp_path, BASE.replace("{type: Adam, learning_rate: 0.001}",
                                            "{decay: 1e-6, type: SGD, lr: 0.1}"))
    assert found[1].hint == "write line 8 as:  optimizer: {type: SGD, learning_rate: 0.1}"


def test_every_fix_of_a_checkpoint_line_is_in_its_one_corrected_line(tmp_path):
    found = problems(tmp_path, with_callbacks(
        "- {type: ModelCheckpoint, filepath: 'w{val_acc:.2f}.h5', monitor: val_acc, "
        "save_best_only: true, period: 1}\n"))
    expected = ("write line 14 as:  - {type: ModelCheckpoint, filepath: "
                "'w{val_accuracy:.2f}.keras', monitor: val_accuracy, save_best_only: true, "
                "save_freq: epoch}")
    assert len(found) == 4
    assert {p.hint for p in found} == {expected}


@pytest.mark.parametrize("fit", [
    "{verbose: 1, batch_size: 4, nb_epoch: 2}",
    "{nb_epoch: 2, verbose: 1, batch_size: 4}",
    "{verbose: 1, nb_epoch: 2, batch_size: 4}",
    "{verbose: 1,nb_epoch: 2 , shuffle: true}",
])
def test_keys_dropped_around_a_rename_leave_a_well_formed_line(tmp_path, fit):
    text = NO_SPLIT.replace("fit:\n  epochs: 2\n", f"fit: {fit}\n")
    renamed = next(p for p in problems(tmp_path, text) if p.field_path == "fit.nb_epoch")
    assert renamed.hint == "write line 11 as:  fit: {epochs: 2}"


def test_each_use_of_an_anchored_layer_gets_the_same_corrected_line(tmp_path):
    text = BASE.replace(LAYER, "&d {type: Dropout, p: 0.2}\n    - *d\n    - " + LAYER)
    found = problems(tmp_path, text)
    assert [p.field_path for p in found] == ["model.layers[0].p", "model.layers[1].p"]
    assert {p.hint for p in found} == {"write line 6 as:  - &d {type: Dropout, rate: 0.2}"}


def test_a_line_that_cannot_be_rebuilt_gets_the_key_and_value_alone(tmp_path):
    text = BASE.replace("  optimizer: {type: Adam, learning_rate: 0.001}",
                        "  optimizer: {type: Adam, 'lr': 0.001}")
    assert one(tmp_path, text).hint == "write:  learning_rate: 0.001"


# ---------------------------------------------------------------- validation_freq

@pytest.mark.parametrize("callback, field", [
    ("{type: EarlyStopping, monitor: val_loss}", "monitor"),
    ("{type: ReduceLROnPlateau}", "monitor"),
    ("{type: ModelCheckpoint, filepath: m.keras, save_best_only: true}", "monitor"),
    ("{type: ModelCheckpoint, filepath: 'm{val_accuracy:.2f}.keras'}", "filepath"),
])
def test_val_monitors_need_validation_every_epoch(tmp_path, callback, field):
    base = BASE.replace("  epochs: 2", "  epochs: 6\n  validation_freq: 3")
    problem = one(tmp_path, with_callbacks(f"- {callback}\n", base))
    assert problem.field_path == f"callbacks[0].{field}" and problem.line == 15
    assert "validation_freq is 3" in problem.message
    assert "fit.validation_freq: 1" in problem.message
    assert "training metric" in problem.message


@pytest.mark.parametrize("callback", [
    "{type: EarlyStopping, monitor: loss}",
    "{type: ModelCheckpoint, filepath: m.keras}",
    "{type: ReduceLROnPlateau, monitor: accuracy}",
])
def test_training_monitors_are_fine_with_any_validation_freq(tmp_path, callback):
    base = BASE.replace("  epochs: 2", "  epochs: 6\n  validation_freq: 3")
    config = loaded(tmp_path, with_callbacks(f"- {callback}\n", base))
    assert config.fit.validation_freq == 3
    monitored = [name for _, name in config.callbacks[0].monitored()]
    assert all(not name.startswith("val_") for name in monitored)


def test_validation_freq_problems_show_even_when_another_section_is_wrong(tmp_path):
    base = BASE.replace("  epochs: 2", "  epochs: 6\n  validation_freq: 2").replace(
        "units: 10", "unit: 10")
    found = problems(tmp_path, with_callbacks("- {type: EarlyStopping}\n", base))
    assert [p.field_path for p in found] == ["model.layers[0].unit", "callbacks[0].monitor"]


@pytest.mark.parametrize("value", ["float32", "mixed_float32"])
def test_float32_as_a_mixed_precision_says_to_leave_the_key_out(tmp_path, value):
    text = BASE.replace("  loss: sparse_categorical_crossentropy\n",
                        f"  loss: sparse_categorical_crossentropy\n  mixed_precision: {value}\n")
    problem = one(tmp_path, text)
    assert problem.field_path == "compile.mixed_precision"
    assert problem.message.startswith("float32 is the default: leave mixed_precision out")
    assert "did you mean" not in problem.message


def test_two_misplaced_keys_for_one_place_ask_to_keep_one(tmp_path):
    """batch_size at the top level and in fit: data.batch_size was not written, so neither
    message may say it is 'already set'."""
    found = problems(tmp_path, NO_SPLIT.replace("  epochs: 2\n", "  epochs: 2\n  batch_size: 8\n")
                     + "batch_size: 16\n")
    by_place = {p.field_path: p.message for p in found}
    assert set(by_place) == {"batch_size", "fit.batch_size"}
    assert not any("already set" in message for message in by_place.values())
    assert by_place["fit.batch_size"].endswith(
        "batch_size gives data.batch_size too, so keep one of them")


@pytest.mark.parametrize("section, line, says", [
    ("fit", "steps_per_execution: 4", "it belongs to compile.steps_per_execution"),
    ("fit", "mixed_precision: mixed_float16", "it belongs to compile.mixed_precision"),
    ("compile", "epochs: 3", "it belongs to fit.epochs"),
    ("compile", "batch_size: 8", "it belongs to data.batch_size"),
    ("fit", "distribute: none", "it belongs to the top level (distribute:)"),
])
def test_a_key_of_another_section_names_where_it_belongs(tmp_path, section, line, says):
    marker = {"fit": "  epochs: 2\n", "compile": "  loss: sparse_categorical_crossentropy\n"}
    text = BASE.replace(marker[section], f"{marker[section]}  {line}\n")
    problem = one(tmp_path, text)
    key = line.split(":")[0]
    assert problem.field_path == f"{section}.{key}"
    assert problem.message.startswith(f"'{key}' is not a key of {section}: {says}")
    assert "did you mean" not in problem.message


def test_independent_mistakes_are_reported_in_one_run(tmp_path, capsys):
    """A missing data file, an activation typo, an unknown optimizer and an old monitor
    name: four sections, four problems, one `validate` (not four rounds of fixing)."""
    config = {
        "name": "four", "data": {"source": "csv", "path": "missing.csv", "label": "y"},
        "model": {"input_shape": [4], "layers": [
            {"type": "Dense", "units": 3, "activation": "softmx"}]},
        "compile": {"optimizer": "adamm", "loss": "sparse_categorical_crossentropy",
                    "metrics": ["accuracy"]},
        "fit": {"epochs": 2},
        "callbacks": [{"type": "EarlyStopping", "monitor": "val_acc"}],
    }
    path = tmp_path / "four.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    code, out, _err = cli_output(capsys, "validate", path)
    assert code == 2
    for field, text in (("data.path", "'missing.csv' does not exist"),
                        ("model.layers[0].activation", "'softmx'"),
                        ("compile.optimizer", "'adamm'"),
                        ("callbacks[0].monitor", "'val_acc'")):
        assert f"{field}: " in out and text in out, (field, out)
