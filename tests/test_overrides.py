"""`--set KEY=VALUE`: values read as YAML, validated like the file, errors naming the --set."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cbrun.cli import main
from cbrun.config.load import load_config
from cbrun.errors import ConfigError

CONFIG = """\
name: t
data: {source: digits, validation_split: 0.2}
model:
  input_shape: [64]
  layers:
    - {type: Dense, units: 10, activation: softmax}
compile:
  loss: sparse_categorical_crossentropy
  metrics: [accuracy]
fit:
  epochs: 2
callbacks:
  - {type: EarlyStopping, monitor: val_loss, patience: 1}
  - {type: ModelCheckpoint, filepath: a.keras}
  - {type: ModelCheckpoint, filepath: b.keras}
"""


@pytest.fixture
def config_path(tmp_path) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG)
    return path


def refused(path: Path, *overrides: str) -> list:
    with pytest.raises(ConfigError) as raised:
        load_config(path, list(overrides))
    return raised.value.problems


def test_values_are_set_and_read_as_yaml(config_path):
    loaded = load_config(config_path, ["fit.epochs=3", "callbacks.EarlyStopping.patience=4",
                                       "compile.metrics=[accuracy, mse]",
                                       "fit.class_weight.1=2.5"])
    config = loaded.config
    assert config.fit.epochs == 3 and config.callbacks[0].patience == 4
    assert config.compile.metrics == ["accuracy", "mse"]
    assert config.fit.class_weight == {1: 2.5}
    assert loaded.overrides[0] == "fit.epochs=3"


@pytest.mark.parametrize("key", ["callbacks.0.patience", "callbacks[0].patience",
                                 "callbacks.-3.patience", "callbacks.EarlyStopping.patience"])
def test_a_callback_by_index_or_by_unique_type(config_path, key):
    assert load_config(config_path, [f"{key}=7"]).config.callbacks[0].patience == 7


def test_missing_sections_are_created(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG.replace("data: {source: digits, validation_split: 0.2}\n", "")
                    .replace("monitor: val_loss", "monitor: loss"))
    config = load_config(path, ["data.validation_split=0.1"]).config
    assert config.data.validation_split == 0.1


def test_later_overrides_win(config_path):
    assert load_config(config_path, ["fit.epochs=3", "fit.epochs=5"]).config.fit.epochs == 5


@pytest.mark.parametrize("override, fragment", [
    ("fit.epochs=abc", "valid integer"),
    ("callbacks.EarlyStopping.patience='3'", "valid integer"),
    ("fit.epochs=", "valid integer"),
    ("fit.epochs=0", "greater than 0"),
    ("callbacks.EarlyStopping.patience=-1", "greater than or equal to 0"),
])
def test_value_errors_name_the_set(config_path, override, fragment):
    [problem] = refused(config_path, override)
    assert problem.file == f"--set {override}" and problem.line is None
    assert fragment in problem.message
    assert problem.render().startswith(f"--set {override}: ")


def test_unknown_keys_and_old_names_through_set(config_path):
    found = refused(config_path, "fit.epoch=3", "compile.optimizer={type: sgd, lr: 0.1}")
    by_file = {p.file: p for p in found}
    assert "did you mean 'epochs'" in by_file["--set fit.epoch=3"].message
    old = by_file["--set compile.optimizer={type: sgd, lr: 0.1}"]
    assert old.field_path == "compile.optimizer.lr" and old.hint == "write:  learning_rate: 0.1"


def test_a_set_that_breaks_another_field_is_reported_where_that_field_is(config_path):
    [problem] = refused(config_path, "data.validation_split=0")
    assert problem.file == str(config_path) and problem.line == 13
    assert problem.field_path == "callbacks[0].monitor" and "no validation data" in problem.message


@pytest.mark.parametrize("override, fragment", [
    ("fit.epochs", "needs KEY=VALUE"),
    ("=3", "key before '=' is empty"),
    ("fit..epochs=3", "not a dotted path"),
    ("callbacks.ModelCheckpoint.filepath=c.keras", "choose one by index, e.g. callbacks.1.filepath"),
    ("callbacks.EarlyStoping.patience=2", "did you mean 'EarlyStopping'"),
    ("callbacks.7.patience=2", "has 3 items (indexes 0 to 2); there is no [7]"),
    ("name.first=x", "str 't', not a mapping or list"),
    ("fit[0]=1", "is a mapping, not a list"),
    ("fit.epochs=[1,", "YAML syntax"),
    ("fit.epochs=!!python/object/apply:os.system [true]", "Python object"),
])
def test_refused_overrides(config_path, override, fragment):
    found = refused(config_path, override)
    assert any(fragment in p.message and p.file == f"--set {override}" for p in found), found


@pytest.mark.parametrize("override, fragment", [
    ("FIT.epochs=5", "unknown key 'FIT' (did you mean 'fit'?)"),
    ("fitt.epochs=3", "unknown key 'fitt' (did you mean 'fit'?)"),
    ("newsection.x=1", "unknown key 'newsection'"),
    ("newsection.deeper.x=1", "unknown key 'newsection'"),
])
def test_a_section_the_set_created_is_blamed_on_the_set(config_path, override, fragment):
    """The file has no line for a key only the --set wrote: name the --set, not line 1."""
    [problem] = refused(config_path, override)
    assert problem.file == f"--set {override}" and problem.line is None
    assert fragment in problem.message


def test_origin_covers_what_a_set_created_inside_a_missing_key():
    from cbrun.config.positions import Positions

    pos = Positions(file="c.yaml", values={("fit",): (2, 3), ("fit", "epochs"): (2, 8)})
    pos.origins[("FIT", "epochs")] = "--set FIT.epochs=5"
    pos.origins[("fit", "epochs")] = "--set fit.epochs=5"
    assert pos.origin(("FIT",)) == "--set FIT.epochs=5"  # not in the file: the --set made it
    assert pos.origin(("fit",)) is None  # in the file: a problem there is the file's
    assert pos.origin(("fit", "epochs", "x")) == "--set fit.epochs=5"


def test_all_refused_overrides_are_reported_together(config_path):
    assert len(refused(config_path, "a", "b", "callbacks.9.x=1")) == 3


def test_cli_validate_and_train_name_the_set(config_path, capsys, tmp_path):
    with pytest.raises(SystemExit) as exited:
        main(["validate", str(config_path), "--set", "fit.epochs=zero"])
    assert exited.value.code == 2
    assert "--set fit.epochs=zero: fit.epochs: " in capsys.readouterr().out
    with pytest.raises(SystemExit) as exited:
        main(["train", str(config_path), "--set", "fit.epochs=zero",
              "--runs-dir", str(tmp_path / "runs")])
    assert exited.value.code == 2
    captured = capsys.readouterr()
    assert "--set fit.epochs=zero: fit.epochs: " in captured.err + captured.out
    assert not (tmp_path / "runs").exists()


keys = st.lists(st.one_of(st.sampled_from(["fit", "epochs", "callbacks", "EarlyStopping",
                                           "patience", "0", "-1", "[0]", "data", "model",
                                           "layers", "Dense", "type", ""]),
                          st.text(max_size=5)), min_size=1, max_size=4).map(".".join)
texts = st.one_of(st.sampled_from(["3", "", "[1,", "{a: 1}", "!!python/none", "val_acc",
                                   "-1", "&a [*a]", "null", "'x'"]), st.text(max_size=10))


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """One folder for every example: hypothesis refuses function-scoped fixtures."""
    return tmp_path_factory.mktemp("set")


# No deadline, no too_slow check: both time the examples, which a loaded machine stretches.
@settings(max_examples=100, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(keys, st.sampled_from(["=", ""]), texts), max_size=3))
def test_random_overrides_never_crash(work, parts):
    path = work / "c.yaml"
    path.write_text(CONFIG)
    overrides = [k + sep + v for k, sep, v in parts]
    try:
        load_config(path, overrides)
    except ConfigError as exc:
        for problem in exc.problems:
            from_file = problem.file == str(path) and problem.line is not None
            assert from_file or (problem.file or "").startswith("--set "), problem
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        args = ["validate", str(path)]
        for override in overrides:
            args += ["--set", override]
        with pytest.raises(SystemExit) as exited:
            main(args)
    assert exited.value.code in (0, 2), out.getvalue()
    assert "Traceback" not in out.getvalue()
