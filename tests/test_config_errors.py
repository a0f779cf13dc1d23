"""Config errors name the file, line, column and field, say what is allowed, and come all
at once: YAML safety, schema messages, old Keras names, monitor checks."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from cbrun.config.load import LoadedConfig, load_config
from cbrun.config.monitors import logged_keys, monitor_direction, primary_monitor
from cbrun.config.yamlio import MAX_CONFIG_BYTES
from cbrun.errors import ConfigError, Problem

BASE = """\
name: t
data: {source: digits, validation_split: 0.2}
model:
  input_shape: [64]
  layers:
    - {type: Dense, units: 10, activation: softmax}
compile:
  optimizer: {type: Adam, learning_rate: 0.001}
  loss: sparse_categorical_crossentropy
  metrics: [accuracy]
fit:
  epochs: 2
"""


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

def test_load_config_keeps_its_one_argument_form(tmp_path):
    loaded = load_config(write(tmp_path, BASE))
    assert isinstance(loaded, LoadedConfig) and loaded.overrides == ()
    assert loaded.config.fit.epochs == 2


def test_unknown_key_suggests_and_lists_what_is_allowed(tmp_path):
    problem = one(tmp_path, BASE.replace("  epochs: 2", "  epochs: 2\n  validaton_freq: 2"))
    assert (problem.line, problem.column) == (13, 3)
    assert "did you mean 'validation_freq'" in problem.message
    assert "fit takes: epochs, steps_per_epoch, validation_freq, class_weight" in problem.message
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


def test_period_one_has_an_exact_replacement_and_period_five_has_not(tmp_path):
    one_ = one(tmp_path, with_callbacks("- {type: ModelCheckpoint, filepath: m.keras, "
                                        "period: 1}\n"))
    assert "save_freq: epoch" in one_.hint
    five = one(tmp_path, with_callbacks("- {type: ModelCheckpoint, filepath: m.keras, "
                                        "period: 5}\n"))
    assert five.hint is None and "cannot save every 5 epochs" in five.message


def test_h5_checkpoints_get_the_suffix_that_fits(tmp_path):
    model = one(tmp_path, with_callbacks("- {type: ModelCheckpoint, filepath: m.h5}\n"))
    assert model.hint.endswith("filepath: m.keras}")
    weights = one(tmp_path, with_callbacks(
        "- {type: ModelCheckpoint, filepath: 'w{epoch}.hdf5', save_weights_only: true}\n"))
    assert "'w{epoch}.weights.h5'" in weights.hint


def test_acc_is_fine_when_the_metric_is_written_acc(tmp_path):
    text = with_callbacks("- {type: EarlyStopping, monitor: val_acc}\n",
                          BASE.replace("metrics: [accuracy]", "metrics: [acc]"))
    load_config(write(tmp_path, text))


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
    load_config(write(tmp_path, text))


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
    loaded(tmp_path, text)


def test_a_renamed_metric_takes_its_direction_from_its_class(tmp_path):
    text = with_callbacks("- {type: EarlyStopping, monitor: val_my_auc}\n",
                          BASE.replace("metrics: [accuracy]",
                                       "metrics: [{type: AUC, name: my_auc}]"))
    config = loaded(tmp_path, text)
    assert monitor_direction(config, "val_my_auc") == "up"
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
    loaded(tmp_path, with_callbacks(f"- {callback}\n", base))


def test_exponent_floats_without_a_dot_are_numbers(tmp_path):
    """PyYAML (YAML 1.1) reads `1e-3` as a string; the learning rate every tutorial writes
    that way must be the number 0.001, and a quoted "1e-3" must stay text."""
    from cbrun.config.yamlio import load_yaml_text

    data = load_yaml_text('a: 1e-3\nb: -2E+5\nc: "1e-3"\nd: 12\n', "x.yaml").data
    assert data == {"a": 0.001, "b": -200000.0, "c": "1e-3", "d": 12}
