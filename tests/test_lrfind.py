"""`cbrun lr-find CONFIG`: an exponential sweep of the learning rate on the config's model and
data, a PNG and a terminal plot, a suggested rate and the `train` line that uses it; its
suggestion trains digits to >= 0.95 validation accuracy in 10 epochs; nothing is kept but
the PNG; mistakes are one line before TensorFlow."""

from __future__ import annotations

import math
import shlex
import tempfile
from pathlib import Path

import yaml
from conftest import REPO, cli, cli_output, only_run, read_log, tiny_config, write_config

from tests.helpers.light import run_cbrun


def everything(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_the_suggestion_trains_digits_to_95_percent_in_10_epochs(tmp_path, capsys,
                                                                monkeypatch):
    """configs/digits.yaml (the demo MLP, Adam) for 10 epochs, at the rate lr-find suggests,
    through the very command line it prints."""
    config = yaml.safe_load((REPO / "configs" / "digits.yaml").read_text())
    config["fit"]["epochs"] = 10
    config["callbacks"] = []  # early stopping would end it before 10; the rest is slow
    work = tmp_path / "work"
    write_config(work, config, "digits.yaml")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.chdir(work)
    result = cli_output(capsys, "lr-find", "digits.yaml")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == ("lr-find: digits-mlp, Adam, 200 batches of 32, learning rate 1e-07 "
                        "to 10")
    assert "learning rate (log scale)" in result.out and "1e-7" in result.out
    assert "plot: lr-find-digits-mlp.png" in lines
    assert (work / "lr-find-digits-mlp.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    suggested = float(next(line for line in lines
                           if line.startswith("suggested learning rate: ")).split()[3])
    train_line = lines[-1]
    assert train_line == ("train with it: cbrun train digits.yaml --set "
                          f"compile.optimizer.learning_rate={suggested:.3g}")
    # Nothing kept: no run directory, no data the source wrote, only the PNG.
    assert everything(work) == ["digits.yaml", "lr-find-digits-mlp.png"]
    assert [p.name for p in scratch.iterdir() if not p.name.startswith("__autograph")] == []

    argv = shlex.split(train_line.removeprefix("train with it: "))[2:]
    assert cli("train", *argv, "--runs-dir", tmp_path / "runs", "--quiet") == 0
    log = read_log(only_run(tmp_path / "runs") / "log.csv")
    assert len(log) == 10 and math.isclose(float(log[0]["learning_rate"]), suggested,
                                           rel_tol=1e-3)
    assert float(log[-1]["val_accuracy"]) >= 0.95, log[-1]


def test_the_sweep_sets_each_batch_rate_and_stops_where_the_loss_diverges():
    """The engine's curve: rates from --min-lr growing by the same factor each batch; at
    1e-7 the model learns nothing (the loss stays where it starts), and SGD at
    rates past 10 blows the loss up, which ends the sweep early."""
    from cbrun.config.root import RunConfig
    from cbrun.engine.lrfind import sweep

    config = RunConfig.model_validate(tiny_config(compile={
        "optimizer": {"type": "SGD", "learning_rate": 0.01},
        "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]}))
    curve = sweep(config, REPO, steps=100, low=1e-7, high=1e4)
    assert curve.rates[0] == 1e-7
    growth = curve.rates[1] / curve.rates[0]
    assert math.isclose(growth, (1e4 / 1e-7) ** (1 / 99), rel_tol=1e-9)
    assert all(math.isclose(b / a, growth, rel_tol=1e-9)
               for a, b in zip(curve.rates, curve.rates[1:], strict=False))
    first = curve.losses[:10]
    assert max(first) - min(first) < 0.2, first  # nothing learnt yet
    assert curve.stop == "diverged" and len(curve.rates) < 100
    assert min(curve.losses) < min(first) - 0.5  # it learnt before the rate grew too high


def test_the_suggestion_is_where_the_loss_falls_fastest_not_a_lagging_average_of_it():
    """A curve whose fall is steepest at 1e-3 (a logistic drop in log10 of the rate, batch
    noise, a blow-up past 0.1): the suggestion is within a factor of two of 1e-3. An
    exponential average of the losses, as the stop rule uses, lags about 50 batches (two
    decades of this sweep) and would suggest near the minimum instead."""
    import random

    from cbrun.plotting.lrcurve import Curve

    noise = random.Random(0)
    rates = [1e-7 * 1e8 ** (i / 199) for i in range(200)]
    losses = [2.3 - 2 / (1 + math.exp(-3 * (math.log10(r) + 3))) + noise.gauss(0, 0.05)
              + (50 * (r - 0.1) if r > 0.1 else 0.0) for r in rates]
    suggested = Curve(rates, losses, "done").suggestion()
    assert suggested is not None and 0.5e-3 < suggested < 2e-3, suggested
    assert Curve(rates, [2.3] * 200, "done").suggestion() is None  # nothing to suggest


def test_an_optimizer_named_by_a_string_gets_a_set_line_that_validates(tmp_path, capsys,
                                                                       monkeypatch):
    config = tiny_config(compile={"optimizer": "rmsprop",
                                  "loss": "sparse_categorical_crossentropy",
                                  "metrics": ["accuracy"]})
    path = write_config(tmp_path, config)
    monkeypatch.chdir(tmp_path)
    png = tmp_path / "out" / "curve.png"
    png.parent.mkdir()
    result = cli_output(capsys, "lr-find", path, "--steps", "60", "--min-lr", "1e-5",
                        "--max-lr", "1", "-o", png, "--set", "data.batch_size=32")
    assert result.code == 0, result.err
    assert "RMSprop, 60 batches of 32, learning rate 1e-05 to 1" in result.out
    assert f"plot: {png}" in result.out and png.stat().st_size > 0
    line = result.out.splitlines()[-1]
    argv = shlex.split(line.removeprefix("train with it: "))
    assert argv[:5] == ["cbrun", "train", str(path), "--set", "data.batch_size=32"]
    assert argv[5] == "--set" and argv[6].startswith(
        "compile.optimizer={type: RMSprop, learning_rate: ")
    assert cli("validate", *argv[2:]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "run.yaml"]


def test_mistakes_are_one_line_before_tensorflow(tmp_path):
    bad = tiny_config()
    bad["fit"]["epochs"] = "many"
    bad_path = write_config(tmp_path, bad, "bad.yaml")
    good = write_config(tmp_path, tiny_config(), "good.yaml")
    (tmp_path / "lr-find-tiny.png").write_bytes(b"mine")
    result = run_cbrun(["lr-find", bad_path],
                       ["lr-find", good, "--min-lr", "1", "--max-lr", "0.1"],
                       ["lr-find", good, "-o", tmp_path / "curve.jpg"],
                       ["lr-find", good],
                       ["lr-find", good, "--set", "compile.optimizer.learning_rat=1"],
                       ["lr-find", good, "--steps", "5"],
                       ["lr-find", good, "-o", tmp_path / "x.png", "--set",
                        "compile.optimizer.gradient_accumulation_steps=4"],
                       ["lr-find", "--help"], cwd=tmp_path)
    assert result.codes == [2] * 7 + [0] and result.heavy == []
    errors = [c.err.strip() for c in result.commands]
    assert errors[0].splitlines()[-1].startswith(f"{bad_path}:29:11: fit.epochs: "), errors[0]
    assert errors[1] == "error: --min-lr 1 must be below --max-lr 0.1"
    assert errors[2] == (f"error: -o {tmp_path / 'curve.jpg'}: the plot is a PNG; name a "
                         f"file ending in .png")
    assert errors[3] == "error: lr-find-tiny.png exists; add --force to replace it"
    assert "learning_rat" in errors[4] and "did you mean" in errors[4]
    assert "--steps" in errors[5]
    assert errors[6] == (
        "error: lr-find sets the rate at every batch, but with gradient_accumulation_steps 4 "
        "the weights change once in 4 batches; find the rate for the batch it stands for: "
        "--set compile.optimizer.gradient_accumulation_steps=null --set data.batch_size=256")
    assert (tmp_path / "lr-find-tiny.png").read_bytes() == b"mine"


def test_a_loss_that_never_falls_gives_no_suggestion_and_says_so(tmp_path, capsys,
                                                                  monkeypatch):
    """SGD from a learning rate of 100 up: the loss only grows, so no rate is suggested
    (exit 1), and the plot that shows why is still written."""
    config = tiny_config(compile={"optimizer": {"type": "SGD", "learning_rate": 0.01},
                                  "loss": "sparse_categorical_crossentropy",
                                  "metrics": ["accuracy"]})
    path = write_config(tmp_path, config)
    monkeypatch.chdir(tmp_path)
    result = cli_output(capsys, "lr-find", path, "--steps", "30", "--min-lr", "100",
                        "--max-lr", "1e6")
    assert result.code == 1, result.out + result.err
    assert result.err.strip() == (
        "error: the loss never fell over the sweep, so there is no rate to suggest; try a "
        "wider range (--min-lr, --max-lr) or more --steps")
    assert "train with it" not in result.out and "plot: lr-find-tiny.png" in result.out
    assert (tmp_path / "lr-find-tiny.png").stat().st_size > 0
