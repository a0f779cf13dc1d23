"""Which checkpoint of a run `last`, `best` and a FILE name, and loading it: the loaded
model reproduces what log.csv logged for that epoch."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cbrun.errors import UsageError
from cbrun.run.checkpoints import choose_checkpoint, open_run
from tests.conftest import cli, only_run, read_log, tiny_config, write_config

# With this seed and learning rate val_loss is best at epoch 3 of 5 (checked below).
CHECKPOINT = {"type": "ModelCheckpoint", "monitor": "val_loss", "save_best_only": True,
              "filepath": "checkpoints/ep{epoch:03d}-{val_loss:.4f}.keras"}


@pytest.fixture(scope="module")
def best_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("runmodel")
    config = tiny_config(name="ckpt", fit={"epochs": 5}, callbacks=[CHECKPOINT])
    config["compile"]["optimizer"]["learning_rate"] = 0.12
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
    from cbrun.engine.runmodel import load_run_model
    from cbrun.engine.sources import data_for_run

    run = open_run(best_run)
    if which == "state":
        which = str(max((best_run / "state").iterdir()))
    checkpoint = choose_checkpoint(run, which)
    model = load_run_model(run, checkpoint)
    splits, _ = data_for_run(run)
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
    from cbrun.engine.runmodel import load_run_model
    from cbrun.engine.sources import data_for_run

    run = open_run(real_run)
    chosen = choose_checkpoint(run, "last")
    assert "restored" in chosen.label
    splits, _ = data_for_run(run)
    got = load_run_model(run, chosen).evaluate(
        splits.validation.x, splits.validation.y, batch_size=64, verbose=0, return_dict=True)
    assert abs(float(got["loss"]) - _val(real_run, chosen.epoch)["val_loss"]) < 1e-6


def test_best_weights_only_go_into_the_configs_model(tmp_path):
    """save_weights_only: the best file is weights, loaded into the model resolved.yaml
    builds; the result reproduces that epoch's logged values."""
    from cbrun.engine.runmodel import load_run_model
    from cbrun.engine.sources import data_for_run

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
    splits, _ = data_for_run(run)
    got = load_run_model(run, chosen).evaluate(
        splits.validation.x, splits.validation.y, batch_size=64, verbose=0, return_dict=True)
    for key, value in got.items():
        assert abs(float(value) - _val(run_dir, chosen.epoch)[f"val_{key}"]) < 1e-6, key


# --- damaged model files (issue 22) ------------------------------------------------------------

def _rezip(source: Path, target: Path, change) -> None:
    """A copy of a .keras archive with its members passed through `change(name, bytes)`
    (None drops the member)."""
    import zipfile

    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for name in old.namelist():
            data = change(name, old.read(name))
            if data is not None:
                new.writestr(name, data)


def _flip_inside(path: Path) -> None:
    """One byte of the weights changed inside an intact archive: only its CRC knows."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("model.weights.h5")
    data = bytearray(path.read_bytes())
    spot = info.header_offset + 30 + len(info.filename) + len(info.extra) + info.compress_size // 2
    data[spot] ^= 0xFF
    path.write_bytes(bytes(data))


DAMAGES = {
    "truncated": (lambda src, dst: dst.write_bytes(src.read_bytes()[:3000]),
                  "it is truncated (a zip archive whose end is missing)"),
    "empty": (lambda src, dst: dst.write_bytes(b""), "it is not a zip archive"),
    "text": (lambda src, dst: dst.write_text("not a model\n"), "it is not a zip archive"),
    "no config": (lambda src, dst: _rezip(src, dst, lambda n, d: None if n == "config.json"
                                          else d), "it holds no config.json"),
    "no weights": (lambda src, dst: _rezip(src, dst, lambda n, d: None if n.startswith(
        "model.weights") else d), "it holds no model.weights.h5"),
    "config not json": (lambda src, dst: _rezip(src, dst, lambda n, d: b"{oops" if
                                                n == "config.json" else d),
                        "its config.json is not valid JSON"),
    "weights not hdf5": (lambda src, dst: _rezip(src, dst, lambda n, d: b"garbage" * 9 if
                                                 n == "model.weights.h5" else d),
                         "its model.weights.h5 is not an HDF5 file"),
    "bit flipped": (lambda src, dst: (dst.write_bytes(src.read_bytes()), _flip_inside(dst)),
                    "its model.weights.h5 is damaged"),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_model_file_is_one_line_naming_it(best_run, tmp_path, capsys, damage):
    """As --checkpoint FILE and as the run's own model.keras (`last`): exit 2, the file and
    what is wrong with it, before TensorFlow loads."""
    from tests.conftest import cli_output

    make, message = DAMAGES[damage]
    file = tmp_path / "damaged.keras"
    make(best_run / "model.keras", file)
    copy = tmp_path / "run"
    shutil.copytree(best_run, copy)
    make(best_run / "model.keras", copy / "model.keras")
    for args in ((best_run, "--checkpoint", file), (copy,)):
        result = cli_output(capsys, "evaluate", *args)
        shown = file if len(args) > 1 else copy / "model.keras"
        assert result.code == 2, result.err
        assert result.err == (f"error: {shown} is not a model file cbrun can load: "
                              f"{message}{result.err.split(message, 1)[1]}")
        assert len(result.err.strip().splitlines()) == 1


def test_damaged_weights_are_one_line(best_run, tmp_path, capsys):
    from tests.conftest import cli_output

    (tmp_path / "text.weights.h5").write_text("not weights")
    result = cli_output(capsys, "evaluate", best_run, "--checkpoint",
                        tmp_path / "text.weights.h5")
    assert result.code == 2 and "is not a weights file cbrun can load: it is not an HDF5 " \
                                 "file" in result.err, result.err
    import keras

    keras.saving.load_model(best_run / "model.keras").save_weights(tmp_path / "w.weights.h5")
    whole = (tmp_path / "w.weights.h5").read_bytes()
    (tmp_path / "cut.weights.h5").write_bytes(whole[:len(whole) // 2])
    result = cli_output(capsys, "evaluate", best_run, "--checkpoint",
                        tmp_path / "cut.weights.h5")
    assert result.code == 2, result.err
    assert f"Keras could not read the weights in {tmp_path / 'cut.weights.h5'}" in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_a_state_pruned_after_it_was_chosen_still_loads(best_run, tmp_path):
    """A run still training removes the chosen state at any moment: it was read whole
    when it was chosen."""
    import json

    from cbrun.engine.runmodel import load_run_model
    from cbrun.engine.sources import data_for_run

    copy = tmp_path / best_run.name
    shutil.copytree(best_run, copy)
    record = json.loads((copy / "run.json").read_text())
    record["status"] = "running"
    (copy / "run.json").write_text(json.dumps(record))
    run = open_run(copy)
    chosen = choose_checkpoint(run, "last")
    assert (chosen.kind, chosen.epoch) == ("state", 5)
    shutil.rmtree(copy / "state")
    model = load_run_model(run, chosen)
    splits, _ = data_for_run(run)
    got = model.evaluate(splits.validation.x, splits.validation.y, batch_size=64, verbose=0,
                         return_dict=True)
    assert abs(float(got["loss"]) - _val(best_run, 5)["val_loss"]) < 1e-6


def test_last_passes_over_a_state_that_goes_or_is_damaged(best_run, tmp_path):
    """A damaged newest state (its checksums say so, or, from before checksums, its
    archive): the one before it is read."""
    import json

    copy = tmp_path / best_run.name
    shutil.copytree(best_run, copy)
    record = json.loads((copy / "run.json").read_text())
    record["status"] = "running"
    (copy / "run.json").write_text(json.dumps(record))
    newest = copy / "state" / "epoch-00005"
    data = bytearray((newest / "variables.npz").read_bytes())
    data[len(data) // 3] ^= 0xFF
    (newest / "variables.npz").write_bytes(bytes(data))
    assert choose_checkpoint(open_run(copy), "last").epoch == 4
    (newest / "checksums.json").unlink()  # a state from before checksums
    assert choose_checkpoint(open_run(copy), "last").epoch == 4
