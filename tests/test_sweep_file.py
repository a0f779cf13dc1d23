"""The sweep file is checked whole before any trial starts: its own keys, its base config,
and every trial config the space can make (at the ends of each range)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import REPO, cli_output, tiny_config, write_config

from tests.helpers.light import run_cbrun

LR = "space: {{compile.optimizer.learning_rate: {{type: {}, low: {}, high: 1}}}}\n"
RLR = {"type": "ReduceLROnPlateau", "monitor": "val_loss", "factor": 0.5, "patience": 1}


def make_sweep(folder: Path, text: str, **base) -> Path:
    write_config(folder, tiny_config(callbacks=[RLR], **base), "base.yaml")
    path = folder / "sweep.yaml"
    path.write_text(text)
    return path


def errors(capsys, *args) -> list[str]:
    """The lines of `cbrun ARGS`'s error output, which must exit 2."""
    result = cli_output(capsys, *args)
    assert result.code == 2, result
    return [line for line in result.err.splitlines() if line.strip()]


def test_a_range_that_makes_an_invalid_config_is_refused_at_its_line(tmp_path, capsys):
    path = make_sweep(tmp_path, """\
name: rlr
base: base.yaml
space:
  compile.optimizer.learning_rate: {type: loguniform, low: 1.0e-4, high: 0.1}
  callbacks.ReduceLROnPlateau.factor: {type: uniform, low: 0.1, high: 1.5}
  model.layers[2].rate: {type: choice, values: [0.0, 0.2, 1.0]}
trials: 4
""")
    err = errors(capsys, "sweep", path, "--runs-dir", tmp_path / "runs")
    assert err[0] == "error: config error (2 problems):"
    assert err[1].startswith(
        f"{path}:5:39: space.callbacks.ReduceLROnPlateau.factor: with "
        "callbacks.ReduceLROnPlateau.factor = 1.5, callbacks[0].factor: factor must be "
        "strictly between 0 and 1")
    assert err[2].startswith(f"{path}:6:25: space.model.layers[2].rate: with "
                             "model.layers[2].rate = 1.0: rate is the fraction")
    assert "[0, 1)" in err[2]
    assert not (tmp_path / "runs").exists()  # refused before anything was made


def test_every_problem_of_a_sweep_file_at_once_with_did_you_mean(tmp_path, capsys):
    path = make_sweep(tmp_path, """\
name: typo
base: base.yaml
space:
  callbacks.EarlyStoping.patience: {type: int, low: 1, high: 3}
  fit.epochs: {type: int, low: 0, high: 3}
metric: val_acc
trials: 2
""")
    err = errors(capsys, "sweep", path, "--runs-dir", tmp_path / "runs")
    assert err[1] == (f"{path}:4:3: space.callbacks.EarlyStoping.patience: no item of "
                      "callbacks has type 'EarlyStoping' (did you mean 'ReduceLROnPlateau'?); "
                      "its items are: 0 ReduceLROnPlateau") or "EarlyStoping" in err[1]
    assert err[2].startswith(f"{path}:5:15: space.fit.epochs: with fit.epochs = 0")
    assert err[3].startswith(f"{path}:6:9: metric: the base config's runs do not log "
                             "'val_acc' (did you mean 'val_accuracy'?)")


@pytest.mark.parametrize("text, where, needle", [
    ("space: {fit.epochs: {type: int, low: true, high: 3}}\ntrials: 2\n", ":3:", "low"),
    ("space: {fit.epochs: {type: choice, values: [2, 2]}}\ntrials: 2\n", ":3:", "twice"),
    ("space: {fit.epochs: {type: int, low: 3, high: 2}}\ntrials: 2\n", ":3:", "below high"),
    ("space: {fit.epochs: {type: intt, low: 1, high: 2}}\ntrials: 2\n", ":3:", "int"),
    (LR.format("loguniform", 0) + "trials: 2\n", ":3:", "low > 0"),
    (LR.format("uniform", 0.1) + "trials: 2\nsampler: grid\n", "", "continuous"),
    ("space: {name: {type: choice, values: [a, b]}}\ntrials: 2\n", ":3:", "cannot be searched"),
    ("space: {fit.epochs: {type: int, low: 1, high: 2}}\ntrials: 2\npruner: medain\n", ":5:",
     "median"),
    ("space: {fit.epochs: {type: int, low: 1, high: 2}}\ntrials: 0\n", ":4:", "greater than 0"),
])
def test_sweep_file_mistakes_name_their_line(tmp_path, capsys, text, where, needle):
    path = make_sweep(tmp_path, "name: bad\nbase: base.yaml\n" + text)
    err = "\n".join(errors(capsys, "sweep", path, "--runs-dir", tmp_path / "runs"))
    assert f"{path}{where}" in err and needle in err, err


def test_a_missing_base_config_is_named_with_where_cbrun_looked(tmp_path, capsys):
    path = tmp_path / "sweep.yaml"
    path.write_text("name: x\nbase: nope.yaml\nspace: {fit.epochs: {type: int, low: 1, "
                    "high: 2}}\ntrials: 1\n")
    assert f"{path}:2:7: base: base 'nope.yaml' is not a file" in "\n".join(
        errors(capsys, "sweep", path))


def test_sweep_help_and_refusals_do_not_import_tensorflow(tmp_path):
    path = make_sweep(tmp_path, "name: x\nbase: base.yaml\nspace: {fit.epochs: {type: int, "
                                "low: 0, high: 2}}\ntrials: 1\n")
    result = run_cbrun(["sweep", "--help"], ["sweep", path], cwd=REPO)
    assert result.codes == [0, 2] and result.heavy == [], result.commands


def test_resuming_something_that_is_no_sweep_says_so(tmp_path, capsys):
    err = "\n".join(errors(capsys, "sweep", "--resume", tmp_path))
    assert "is not a sweep directory (no sweep.json)" in err
    assert "Usage: cbrun sweep" in "\n".join(errors(capsys, "sweep"))  # the commands


def test_a_sweep_file_changed_under_an_existing_sweep_is_refused(tmp_path, capsys):
    path = make_sweep(tmp_path, "name: x\nbase: base.yaml\nspace: {fit.epochs: {type: int, "
                                "low: 1, high: 2}}\ntrials: 1\n")
    sweep_dir = tmp_path / "runs" / "sweeps" / "x"
    sweep_dir.mkdir(parents=True)
    (sweep_dir / "sweep.json").write_text(json.dumps({
        "id": "0" * 32, "name": "x", "base": str(tmp_path / "base.yaml"), "sweep_sha256": "0",
        "base_sha256": "0", "storage": "s"}))
    err = "\n".join(errors(capsys, "sweep", path, "--runs-dir", tmp_path / "runs"))
    assert "the sweep file differs" in err and "give the new sweep another `name`" in err
    assert yaml.safe_load(path.read_text())["name"] == "x"


def test_the_example_sweep_file_is_valid():
    from cbrun.sweep.load import load_sweep

    sweep = load_sweep(REPO / "configs" / "sweeps" / "digits.yaml")
    assert (sweep.metric, sweep.direction) == ("val_accuracy", "maximize")
    assert sweep.base_path.resolve() == REPO / "configs" / "digits.yaml"
    assert sweep.trial_overrides({"model.layers[1].units": 64}, 3) == [
        "fit.epochs=8", "model.layers[1].units=64", "name=digits-mlp-t003"]


def test_a_base_that_extends_other_files_is_read_composed_and_bound_to_all_of_them(tmp_path):
    """The base of a sweep may be a config made of several files (`extends:`): its values
    come from every file, a mistake is at the file that made it, and the sweep is bound
    to the files it extends too (an edit there is a change of the base)."""
    from cbrun.errors import ConfigError
    from cbrun.sweep.load import load_sweep

    make_sweep(tmp_path, "")
    (tmp_path / "short.yaml").write_text("extends: base.yaml\nfit:\n  epochs: 2\n")
    path = tmp_path / "sweep.yaml"
    path.write_text("name: composed\nbase: short.yaml\n"
                    + LR.format("loguniform", 1.0e-4) + "trials: 2\n")
    sweep = load_sweep(path)
    assert sweep.base.fit.epochs == 2 and sweep.base.callbacks[0].type == "ReduceLROnPlateau"
    before = sweep.base_sha256
    config = yaml.safe_load((tmp_path / "base.yaml").read_text())
    config["callbacks"][0]["patience"] = 3
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    assert load_sweep(path).base_sha256 != before
    config["callbacks"][0]["patiense"] = config["callbacks"][0].pop("patience")
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    with pytest.raises(ConfigError) as caught:
        load_sweep(path)
    (problem,) = caught.value.problems
    assert problem.file.endswith("base.yaml") and "patiense" in problem.message, problem
