"""Which checkpoint of a run `last`, `best` and a FILE name, and loading it: the loaded
model reproduces what log.csv logged for that epoch."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cbrun.checkpoints import choose_checkpoint, open_run
from cbrun.errors import UsageError
from tests.conftest import cli, only_run, read_log, tiny_config, write_config

# With this seed and learning rate val_loss is best at epoch 4 of 5 (checked below).
CHECKPOINT = {"type": "ModelCheckpoint", "monitor": "val_loss", "save_best_only": True,
              "filepath": "checkpoints/ep{epoch:03d}-{val_loss:.4f}.keras"}


@pytest.fixture(scope="module")
def best_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("runmodel")
    config = tiny_config(name="ckpt", fit={"epochs": 5}, callbacks=[CHECKPOINT])
    config["compile"]["optimizer"]["learning_rate"] = 0.05
    assert cli("train", write_config(folder, config), "--runs-dir", folder / "runs",
               "--quiet") == 0
    return only_run(folder / "runs")


def _val(run_dir: Path, epoch: int) -> dict[str, float]:
    row = read_log(run_dir / "log.csv")[epoch - 1]
    return {k: float(v) for k, v in row.items() if k.startswith("val_")}


def test_best_is_the_best_logged_epoch_not_the_last(best_run):
    rows = read_log(best_run / "log.csv")
    losses = [float(r["val_loss"]) for r in rows]
    best = losses.index(min(losses)) + 1
    assert best != len(rows), "the config must make the best epoch an earlier one"
    chosen = choose_checkpoint(open_run(best_run), "best")
    assert chosen.epoch == best
    assert chosen.path.name.startswith(f"ep{best:03d}-")
    last = choose_checkpoint(open_run(best_run), "last")
    assert (last.path.name, last.epoch) == ("model.keras", len(rows))


@pytest.mark.parametrize("which", ["last", "best", "state"])
def test_loaded_model_reproduces_the_logged_validation_values(best_run, which):
    from cbrun.train.runmodel import load_run_model
    from cbrun.train.sources import data_for_run

    run = open_run(best_run)
    if which == "state":
        which = str(max((best_run / "state").iterdir()))
    checkpoint = choose_checkpoint(run, which)
    model = load_run_model(run, checkpoint)
    splits, _ = data_for_run(run.config, best_run)
    got = model.evaluate(splits.validation.x, splits.validation.y, batch_size=64, verbose=0,
                         return_dict=True)
    logged = _val(best_run, checkpoint.epoch)
    assert logged.keys() == {f"val_{k}" for k in got}
    for key, value in got.items():
        assert abs(float(value) - logged[f"val_{key}"]) < 1e-6, key


def test_an_interrupted_run_is_last_at_its_newest_state(best_run, tmp_path):
    import json

    copy = tmp_path / best_run.name
    shutil.copytree(best_run, copy)
    (copy / "model.keras").unlink()
    record = json.loads((copy / "run.json").read_text())
    record["status"] = "interrupted"
    (copy / "run.json").write_text(json.dumps(record))
    chosen = choose_checkpoint(open_run(copy), "last")
    assert (chosen.kind, chosen.epoch) == ("state", 5)
    assert "interrupted" in chosen.label


def test_errors_name_the_problem(best_run, tmp_path):
    with pytest.raises(UsageError, match="not a run directory"):
        open_run(tmp_path)
    run = open_run(best_run)
    with pytest.raises(UsageError, match="neither last, best, nor a file"):
        choose_checkpoint(run, "checkpoints/nope.keras")
    with pytest.raises(UsageError, match="not a .keras model"):
        choose_checkpoint(run, "log.csv")
    copy = tmp_path / "copy"
    shutil.copytree(best_run, copy)
    for path in (copy / "checkpoints").iterdir():
        path.unlink()
    with pytest.raises(UsageError, match="no such file is there"):
        choose_checkpoint(open_run(copy), "best")


def test_a_run_without_a_best_checkpoint_says_so(real_run, tmp_path):
    run = open_run(real_run)
    assert choose_checkpoint(run, "best").epoch is not None  # real_run keeps its best
    copy = tmp_path / "nockpt"
    shutil.copytree(real_run, copy)
    text = (copy / "resolved.yaml").read_text()
    import yaml

    data = yaml.safe_load(text)
    data["callbacks"] = [c for c in data["callbacks"] if c["type"] != "ModelCheckpoint"]
    (copy / "resolved.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(UsageError, match="kept no checkpoint of its best epoch"):
        choose_checkpoint(open_run(copy), "best")


def test_last_with_restored_weights_is_the_epoch_early_stopping_restored(real_run):
    """real_run's EarlyStopping restores its best weights: model.keras holds that epoch."""
    from cbrun.train.runmodel import load_run_model
    from cbrun.train.sources import data_for_run

    run = open_run(real_run)
    chosen = choose_checkpoint(run, "last")
    assert "restored" in chosen.label
    splits, _ = data_for_run(run.config, real_run)
    got = load_run_model(run, chosen).evaluate(
        splits.validation.x, splits.validation.y, batch_size=64, verbose=0, return_dict=True)
    assert abs(float(got["loss"]) - _val(real_run, chosen.epoch)["val_loss"]) < 1e-6


def test_best_weights_only_go_into_the_configs_model(tmp_path):
    """save_weights_only: the best file is weights, loaded into the model resolved.yaml
    builds; the result reproduces that epoch's logged values."""
    from cbrun.train.runmodel import load_run_model
    from cbrun.train.sources import data_for_run

    config = tiny_config(name="weights", fit={"epochs": 3}, callbacks=[
        {"type": "ModelCheckpoint", "filepath": "checkpoints/best.weights.h5",
         "save_weights_only": True, "save_best_only": True, "monitor": "val_accuracy"}])
    assert cli("train", write_config(tmp_path, config), "--runs-dir", tmp_path / "runs",
               "--quiet") == 0
    run_dir = only_run(tmp_path / "runs")
    run = open_run(run_dir)
    chosen = choose_checkpoint(run, "best")
    accuracies = [float(r["val_accuracy"]) for r in read_log(run_dir / "log.csv")]
    assert (chosen.kind, chosen.epoch) == ("weights", accuracies.index(max(accuracies)) + 1)
    splits, _ = data_for_run(run.config, run_dir)
    got = load_run_model(run, chosen).evaluate(
        splits.validation.x, splits.validation.y, batch_size=64, verbose=0, return_dict=True)
    for key, value in got.items():
        assert abs(float(value) - _val(run_dir, chosen.epoch)[f"val_{key}"]) < 1e-6, key
