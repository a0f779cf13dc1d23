"""Shell completion through click's mechanism: what the shell gets at each Tab, computed
without importing TensorFlow (the shell runs cbrun at every Tab)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import fake_run

from tests.helpers.light import run_cbrun


def complete(cwd: Path, line: str) -> list[str]:
    """The candidates bash gets for the last word of `line` (empty after a space), from
    `cbrun` run as the shell's completion function runs it, which must stay light."""
    words = line.split(" ")
    result = run_cbrun([], whole=True, cwd=cwd, env={
        "_CBRUN_COMPLETE": "bash_complete", "COMP_WORDS": line,
        "COMP_CWORD": str(len(words) - 1)})
    (done,) = result.commands
    assert done.code == 0 and result.heavy == [], (done, result.heavy)
    return [line.split(",", 1)[1] for line in done.out.splitlines()]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """runs/ with two runs, a sweep's folder of runs, a folder that is no run and a stray
    file; older runs two folders down elsewhere."""
    root = tmp_path_factory.mktemp("completion")
    fake_run(root / "runs", "20261121-101010-mlp")
    fake_run(root / "runs", "20261122-090000-cnn")
    (root / "runs" / "notes").mkdir()
    (root / "runs" / "readme.txt").write_text("x")
    fake_run(root / "runs" / "sweep-lr", "trial-001")
    fake_run(root / "old" / "october", "20261001-120000-mlp")
    return root


@pytest.mark.parametrize("command", ["resume", "export", "evaluate", "predict"])
def test_run_directories_complete_from_runs_without_typing_it(workdir, command):
    assert complete(workdir, f"cbrun {command} ") == [
        "old/", "runs/20261121-101010-mlp", "runs/20261122-090000-cnn", "runs/sweep-lr/"]


def test_a_typed_prefix_narrows_the_runs(workdir):
    assert complete(workdir, "cbrun resume runs/2026112") == [
        "runs/20261121-101010-mlp", "runs/20261122-090000-cnn"]
    assert complete(workdir, "cbrun export runs/20261122") == ["runs/20261122-090000-cnn"]
    assert complete(workdir, "cbrun export runs/s") == ["runs/sweep-lr/"]
    assert complete(workdir, "cbrun export runs/sweep-lr/") == ["runs/sweep-lr/trial-001"]
    assert complete(workdir, "cbrun export old/") == ["old/october/"]
    assert complete(workdir, "cbrun export old/october/") == [
        "old/october/20261001-120000-mlp"]


def test_plot_completes_runs_and_their_log_csv(workdir):
    assert complete(workdir, "cbrun plot runs/20261121-101010-mlp/") == [
        "runs/20261121-101010-mlp/log.csv"]
    # plot takes several paths: the second word completes like the first.
    assert complete(workdir, "cbrun plot runs/20261121-101010-mlp runs/2026112") == [
        "runs/20261121-101010-mlp", "runs/20261122-090000-cnn"]


def test_callback_names_complete(workdir):
    assert complete(workdir, "cbrun callbacks Ear") == ["EarlyStopping"]
    assert "ModelCheckpoint" in complete(workdir, "cbrun callbacks ")


def test_commands_and_options_complete(workdir):
    assert {"export", "completion", "resume"} <= set(complete(workdir, "cbrun "))
    assert complete(workdir, "cbrun export runs/x --form") == ["--format"]
    assert complete(workdir, "cbrun export runs/x --format ") == [
        "saved_model", "litert", "onnx"]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_clicks_script_for_each_shell(shell, capsys):
    from conftest import cli

    assert cli("completion", shell) == 0
    script = capsys.readouterr().out
    assert f"_CBRUN_COMPLETE={shell}_complete" in script
