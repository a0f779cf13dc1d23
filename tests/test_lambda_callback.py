"""LambdaCallback: functions named by import path, called by Keras at their hooks, with the
params their signatures name; every mistake is one message before the first epoch."""

from __future__ import annotations

import inspect
import json

import keras
import pytest
from conftest import cli, cli_output, only_run, read_log, tiny_config, write_config

from cbrun.callbacks.lambda_callback import HOOKS

HOOK_MODULE = '''
import json

def log_epoch(epoch, logs, run_dir, filename, tag):
    with open(run_dir / filename, "a") as handle:
        handle.write(json.dumps({"epoch": epoch, "tag": tag, "loss": logs["loss"]}) + "\\n")

def log_end(logs, run_dir, filename):
    with open(run_dir / filename, "a") as handle:
        handle.write(json.dumps({"end": True}) + "\\n")

BATCHES = []

def count_batch(batch, logs):
    BATCHES.append(batch)

def write_count(logs, run_dir):
    (run_dir / "batches.txt").write_text(str(len(BATCHES)))

def wrong_arity(epoch):
    pass

NOT_A_FUNCTION = 3
'''


def lambda_run(tmp_path, spec: dict, epochs: int = 3):
    (tmp_path / "my_hooks.py").write_text(HOOK_MODULE)
    config = write_config(tmp_path, tiny_config(fit={"epochs": epochs},
                                                callbacks=[{"type": "LambdaCallback", **spec}]))
    return config, tmp_path / "runs"


def test_hooks_are_every_hook_of_a_keras_callback():
    keras_hooks = {name for name, _ in inspect.getmembers(keras.callbacks.Callback)
                   if name.startswith("on_")}
    assert set(HOOKS) == keras_hooks
    for name, args in HOOKS.items():
        params = list(inspect.signature(getattr(keras.callbacks.Callback, name)).parameters)
        assert params[1:] == list(args), name


def test_functions_write_one_line_per_epoch_and_one_at_train_end(tmp_path):
    config, runs = lambda_run(tmp_path, {
        "on_epoch_end": "my_hooks:log_epoch", "on_train_end": "my_hooks:log_end",
        "params": {"filename": "hooks.jsonl", "tag": "bound"}})
    # Batches of 32: 45 an epoch; epoch hooks allow several per call (given: what `auto`
    # picks depends on the machine's speed), where a batch hook would refuse them.
    assert cli("train", config, "--runs-dir", runs, "-q", "--set", "data.batch_size=32",
               "--set", "compile.steps_per_execution=5") == 0
    run = only_run(runs)
    lines = [json.loads(line) for line in (run / "hooks.jsonl").read_text().splitlines()]
    assert [line.get("epoch") for line in lines] == [0, 1, 2, None]
    assert all(line["tag"] == "bound" for line in lines[:3])
    assert lines[-1] == {"end": True}
    # The loss the function saw is the one logged for that epoch.
    logged = [float(row["loss"]) for row in read_log(run / "log.csv")]
    assert [line["loss"] for line in lines[:3]] == pytest.approx(logged, rel=1e-6)
    # Epoch hooks only: several batches still run per compiled call.
    assert json.loads((run / "run.json").read_text())["steps_per_execution"] == 5


def test_a_training_batch_hook_sees_every_batch(tmp_path):
    config, runs = lambda_run(tmp_path, {"on_train_batch_end": "my_hooks:count_batch",
                                         "on_train_end": "my_hooks:write_count"}, epochs=2)
    assert cli("train", config, "--runs-dir", runs, "-q", "--set", "data.batch_size=32") == 0
    run = only_run(runs)
    assert json.loads((run / "run.json").read_text())["steps_per_execution"] == 1
    batches = -(-1437 // 32)  # digits: 1,437 training samples after the 0.2 split
    assert (run / "batches.txt").read_text() == str(2 * batches)


@pytest.mark.parametrize("spec, expected", [
    ({"on_epoch_ends": "my_hooks:log_epoch"},
     ["callbacks[0].on_epoch_ends", "did you mean 'on_epoch_end'"]),
    ({"on_epoch_end": "my_hooks.log_epoch"}, ["callbacks[0].on_epoch_end", "'module:function'"]),
])
def test_config_mistakes_exit_2_before_tensorflow(tmp_path, capsys, spec, expected):
    config, runs = lambda_run(tmp_path, spec)
    code, _, err = cli_output(capsys, "train", config, "--runs-dir", runs)
    assert code == 2
    assert f"{config}:" in err
    for part in expected:
        assert part in err
    assert not runs.exists()


@pytest.mark.parametrize("spec, expected", [
    ({"on_epoch_end": "my_hooks:log_epok", "params": {"filename": "f", "tag": 1}},
     ["callbacks[0].on_epoch_end", "module 'my_hooks' has no 'log_epok'",
      "did you mean 'log_epoch'"]),
    ({"on_train_begin": "my_hooks:setup"},
     ["has no 'setup'; its functions: log_epoch, log_end, count_batch, write_count"]),
    ({"on_epoch_end": "no_such_hooks:log_epoch"},
     ["callbacks[0].on_epoch_end", "no module named 'no_such_hooks'"]),
    ({"on_epoch_end": "my_hooks:NOT_A_FUNCTION"}, ["is int 3, not a function"]),
    ({"on_epoch_end": "my_hooks:wrong_arity"},
     ["my_hooks:wrong_arity(epoch) cannot be called as on_epoch_end calls it",
      "(epoch, logs)"]),
    ({"on_train_end": "my_hooks:log_end", "params": {"filename": "f", "tagg": 1}},
     ["callbacks[0].params.tagg", "no function takes 'tagg'"]),
])
def test_import_mistakes_exit_2_when_training_starts(tmp_path, capsys, spec, expected):
    config, runs = lambda_run(tmp_path, spec)
    code, _, err = cli_output(capsys, "train", config, "--runs-dir", runs)
    assert code == 2
    for part in expected:
        assert part in err
    assert f"{config}:" in err  # at the line of the hook in the file
    assert list(runs.iterdir()) == []  # nothing was trained, nothing is kept
