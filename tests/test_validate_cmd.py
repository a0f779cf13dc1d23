"""`cbrun validate CONFIG...`: exit 0 or 2, every problem of every file, --json, no TF."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import cli_output

from tests.helpers.light import run_cbrun

GOOD = """\
name: digits-mlp
data: {source: digits, validation_split: 0.2, batch_size: 32}
model:
  input_shape: [64]
  layers:
    - {type: Dense, units: 128, activation: relu}
    - {type: Dense, units: 10, activation: softmax}
compile:
  optimizer: {type: Adam, learning_rate: 0.001}
  loss: sparse_categorical_crossentropy
  metrics: [accuracy]
fit: {epochs: 30}
callbacks:
  - {type: EarlyStopping, monitor: val_loss, patience: 5}
  - type: ModelCheckpoint
    filepath: checkpoints/ep{epoch:03d}-val_loss{val_loss:.3f}.keras
    monitor: val_loss
    save_best_only: true
"""
BAD = GOOD.replace("patience: 5", "patiance: 5").replace("epochs: 30", "epochs: -3")
# Where the mistakes are, counted from the text rather than from cbrun.
TYPO = (14, BAD.splitlines()[13].index("patiance") + 1)
EPOCHS = (12, BAD.splitlines()[11].index("-3") + 1)


def run(*args: str, capsys) -> tuple[int, str]:
    """`cbrun validate ARGS`: exit code and the output of both streams, in order."""
    code, out, err = cli_output(capsys, "validate", *args)
    return code, out + err


@pytest.fixture
def files(tmp_path) -> tuple[Path, Path]:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(GOOD)
    bad.write_text(BAD)
    return good, bad


def test_valid_config_exits_0_and_says_what_it_logs(files, capsys):
    code, out = run(str(files[0]), capsys=capsys)
    assert code == 0
    assert f"ok  {files[0]}" in out
    assert "logs loss, accuracy, val_loss, val_accuracy, learning_rate" in out


def test_every_file_and_every_problem_is_reported(files, capsys):
    good, bad = files
    code, out = run(str(bad), str(good), str(bad.with_name("missing.yaml")), capsys=capsys)
    assert code == 2
    assert f"FAIL {bad}  (2 problems)" in out and f"ok  {good}" in out
    assert f"{bad}:{EPOCHS[0]}:{EPOCHS[1]}: fit.epochs: " in out
    assert f"{bad}:{TYPO[0]}:{TYPO[1]}: callbacks[0].patiance: unknown key 'patiance'" in out
    assert "missing.yaml: (top level): no such file" in out


def test_json_output(files, capsys):
    good, bad = files
    code, out = run("--json", str(good), str(bad), capsys=capsys)
    assert code == 2
    doc = json.loads(out)
    assert doc["ok"] is False
    first, second = doc["files"]
    assert first["ok"] is True and first["name"] == "digits-mlp"
    assert first["callbacks"] == ["EarlyStopping", "ModelCheckpoint"]
    assert second["ok"] is False
    problem = next(p for p in second["problems"] if p["field"] == "callbacks[0].patiance")
    assert (problem["file"], problem["line"], problem["column"]) == (str(bad), *TYPO)
    assert "did you mean 'patience'" in problem["message"]


def test_json_is_ok_when_all_are(files, capsys):
    code, out = run("--json", str(files[0]), capsys=capsys)
    assert code == 0 and json.loads(out)["ok"] is True


def test_json_stays_strict_json_for_nan(files, capsys):
    code, out = run("--json", str(files[0]), "--set", "fit.epochs=.nan", capsys=capsys)
    assert code == 2
    [problem] = json.loads(out, parse_constant=lambda c: pytest.fail(c))["files"][0]["problems"]
    assert problem["given"] == "nan"


def test_set_is_applied_before_checking(files, capsys):
    code, out = run(str(files[0]), "--set", "callbacks.EarlyStopping.monitor=val_acc",
                    capsys=capsys)
    assert code == 2
    assert "--set callbacks.EarlyStopping.monitor=val_acc: callbacks[0].monitor" in out
    assert "val_accuracy" in out


@pytest.mark.parametrize("callback, field, advice", [
    ("{type: ReduceLROnPlateau, epsilon: 0.01}", "epsilon",
     "'epsilon' is the old name of ReduceLROnPlateau's 'min_delta'"),
    ("{type: ModelCheckpoint, filepath: m.keras, period: 5}", "period",
     "Keras 3 cannot save every 5 epochs: `save_freq: epoch` saves at every epoch end"),
    ("{type: TensorBoard, write_grads: true}", "write_grads",
     "`histogram_freq` writes the weights' histograms"),
])
def test_parameters_of_older_keras_name_their_replacement(tmp_path, capsys, callback, field,
                                                          advice):
    path = tmp_path / "old.yaml"
    path.write_text(GOOD + f"  - {callback}\n")
    column = len("  - ") + callback.index(field) + 1
    code, out = run(str(path), capsys=capsys)
    assert code == 2
    assert f"FAIL {path}  (1 problem)" in out
    assert f"{path}:19:{column}: callbacks[2].{field}: " in out and advice in out


def test_no_config_is_a_usage_error(capsys):
    code, _, err = cli_output(capsys, "validate")
    assert code == 2 and "CONFIG" in err, err


def test_validate_schema_and_callbacks_do_not_import_tensorflow(files):
    good, bad = files
    result = run_cbrun(["validate", good], ["validate", "--json", bad], ["schema"],
                       ["callbacks"], ["callbacks", "ModelCheckpoint"])
    assert result.codes == [0, 2, 0, 0, 0], result.commands
    assert result.heavy == []


NPZ = GOOD.replace("data: {source: digits, validation_split: 0.2, batch_size: 32}",
                   "data: {source: npz, path: arrays/train.npz, validation_path: val.npz}")


def test_npz_files_are_found_relative_to_the_config_file(tmp_path, capsys, monkeypatch):
    import numpy as np

    folder = tmp_path / "project"
    (folder / "arrays").mkdir(parents=True)
    config = folder / "c.yaml"
    config.write_text(NPZ)
    line = NPZ.splitlines()[1]
    code, out = run(str(config), capsys=capsys)
    assert code == 2
    assert (f"{config}:2:{line.index('arrays/') + 1}: data.path: path 'arrays/train.npz' "
            f"does not exist") in out
    assert str(folder / "arrays" / "train.npz") in out
    assert f"{config}:2:{line.index('val.npz') + 1}: data.validation_path: " in out
    for name in ("arrays/train.npz", "val.npz"):
        np.savez(folder / name, x=np.zeros((4, 64)), y=np.zeros(4))
    monkeypatch.chdir(tmp_path)  # the working folder does not matter, the config's does
    code, out = run("project/c.yaml", capsys=capsys)
    assert code == 0, out


def test_npz_mistakes_get_a_suggestion_and_name_the_set(tmp_path, capsys):
    (tmp_path / "arrays").mkdir()
    (tmp_path / "arrays" / "trian.npz").write_bytes(b"")
    (tmp_path / "val.npz").mkdir()
    config = tmp_path / "c.yaml"
    config.write_text(NPZ)
    code, out = run(str(config), "--set", "data.validation_path=arrays", capsys=capsys)
    assert code == 2
    assert "(did you mean 'arrays/trian.npz'?)" in out
    assert ("--set data.validation_path=arrays: data.validation_path: validation_path "
            "'arrays' is a folder") in out


def test_load_config_checks_data_files_only_when_asked(tmp_path):
    """`cbrun resume` loads runs/<id>/resolved.yaml, whose folder is not the config's."""
    from cbrun.config.load import load_config
    from cbrun.errors import ConfigError

    config = tmp_path / "c.yaml"
    config.write_text(NPZ)
    assert load_config(config).config.data.path == "arrays/train.npz"
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(config, check_data_files=True)


def test_debug_shows_the_traceback_of_a_user_error(tmp_path):
    """Without --debug a config error is one message; with it, the traceback too."""
    import subprocess
    import sys

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nfit: {epochs: -1}\n")
    plain = subprocess.run([sys.executable, "-m", "cbrun", "validate", str(bad)],
                           capture_output=True, text=True, check=False)
    debug = subprocess.run([sys.executable, "-m", "cbrun", "--debug", "train", str(bad)],
                           capture_output=True, text=True, check=False)
    assert plain.returncode == 2 and "Traceback" not in plain.stdout + plain.stderr
    assert debug.returncode == 2 and "Traceback" in debug.stderr
    assert "ConfigError" in debug.stderr and "fit.epochs" in debug.stderr
