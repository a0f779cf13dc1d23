"""The data order contract (epoch k's order is a pure function of (seed, k)) on every
source, and exact resume for a table and streamed images."""

from __future__ import annotations

import inspect
import signal

import numpy as np
import pytest
from conftest import HANG_S, cbrun_process, cli, only_run, read_log, write_config
from datafiles import (
    REVIEWS_DATA,
    image_config,
    review_rows,
    table_config,
    table_rows,
    text_graph_config,
    write_csv,
    write_images,
)

from cbrun.state.files import FAULT_ENV


def test_the_order_is_a_pure_function_of_seed_and_epoch():
    from cbrun.engine.data import epoch_order

    first = epoch_order(7, 0, 50, shuffle=True)
    assert np.array_equal(first, epoch_order(7, 0, 50, shuffle=True))
    assert not np.array_equal(first, epoch_order(7, 1, 50, shuffle=True))
    assert not np.array_equal(first, epoch_order(8, 0, 50, shuffle=True))
    assert sorted(first.tolist()) == list(range(50))
    assert epoch_order(7, 3, 50, shuffle=False).tolist() == list(range(50))


def test_orders_are_drawn_one_epoch_at_a_time():
    """A million declared epochs cost one epoch's order, not a million."""
    from cbrun.engine.data import EpochOrder, epoch_orders, train_dataset

    orders = epoch_orders(7, 0, 1_000_000, 10, shuffle=True)
    assert inspect.isgenerator(orders)
    assert next(orders).tolist() == np.random.default_rng([7, 0]).permutation(10).tolist()
    # The training pipeline takes no epoch count: what it holds is one order variable.
    assert "epochs" not in inspect.signature(train_dataset).parameters
    assert EpochOrder(7, 10, True).order.shape == (10,)


def test_a_million_epochs_start_at_once_and_stop_early(tmp_path):
    write_csv(tmp_path / "animals.csv", table_rows(60))
    config = table_config("long", {"source": "csv", "path": "animals.csv", "label": "species",
                                   "validation_split": 0.2}, epochs=1_000_000)
    config["callbacks"] = [{"type": "EarlyStopping", "monitor": "loss", "min_delta": 100,
                            "patience": 1}]
    assert cli("train", write_config(tmp_path, config), "--runs-dir", tmp_path / "runs",
               "-q") == 0
    assert len(read_log(only_run(tmp_path / "runs") / "log.csv")) == 2


def test_the_training_batches_follow_the_order_and_shuffle_false_keeps_file_order(tmp_path):
    from cbrun.engine.data import train_dataset
    from cbrun.engine.sources import ImageFiles, Split

    write_images(tmp_path / "shapes", per_class=3)
    paths = sorted(str(p) for p in (tmp_path / "shapes").rglob("*.*"))
    split = Split(ImageFiles(np.array(paths), (16, 16), 3), np.arange(6, dtype=np.int32))
    for shuffle, epoch in ((True, 0), (True, 1), (False, 4)):
        dataset, order = train_dataset(split, 2, seed=3, shuffle=shuffle, steps=3)
        order.set_epoch(epoch)
        labels = np.concatenate([y.numpy() for _, y in dataset])
        expected = (np.random.default_rng([3, epoch]).permutation(6) if shuffle
                    else np.arange(6))
        assert labels.tolist() == expected.tolist()


def test_array_batches_are_the_orders_rows_never_batched_a_sample_at_a_time():
    """Training arrays are put in the epoch's order in one gather (up to 256 MB) or a batch
    at a time (beyond), and batch i holds rows order[i*b:(i+1)*b] either way: for a dict of
    inputs, text, a short last batch, steps_per_epoch's cap and a resume inside the epoch.
    The batches are cut from the gathered rows, never made by batching single samples again
    (tf.data work per sample: issue 28, the wide MLP's epoch against the floor)."""
    import tensorflow as tf

    from cbrun.engine.data import train_dataset
    from cbrun.engine.sources import Split

    rng = np.random.default_rng(0)
    split = Split({"a": rng.normal(size=(23, 3)).astype("float32"),
                   "b": np.array([f"w{i}" for i in range(23)])},
                  rng.integers(0, 4, size=23).astype("int32"))
    order = np.random.default_rng([7, 2]).permutation(23)
    for limit in (10**9, 0):  # whole epoch, per batch
        for steps, start in ((5, 0), (3, 0), (5, 2), (5, 4)):
            dataset, keeper = train_dataset(split, 5, seed=7, shuffle=True, steps=steps,
                                            whole_epoch_bytes=limit, start=start)
            keeper.set_epoch(2)
            seen = [(x["a"].numpy(), x["b"].numpy(), y.numpy()) for x, y in dataset]
            assert len(seen) == steps - start
            for i, (a, b, y) in enumerate(seen, start):
                rows = order[i * 5:(i + 1) * 5]
                np.testing.assert_array_equal(a, split.x["a"][rows])
                assert b.astype(str).tolist() == split.x["b"][rows].tolist()
                np.testing.assert_array_equal(y, split.y[rows])
            assert len(seen[-1][2]) == (3 if steps == 5 else 5)
        graph = tf.compat.v1.GraphDef.FromString(dataset._as_serialized_graph().numpy())
        ops = {n.op for n in graph.node} | {n.op for f in graph.library.function
                                             for n in f.node_def}
        assert "GatherV2" in ops
        assert not ops & {"BatchDataset", "BatchDatasetV2", "PaddedBatchDatasetV2"}, (
            "the epoch's samples are batched one by one")


def test_a_raw_csv_with_adapted_normalization_trains_like_one_normalised_by_hand(tmp_path):
    """Normalization(adapt: true) learns the training rows' mean and variance: the curves
    are those of the same table standardised beforehand, and far from the raw table's."""
    rows = table_rows(150)
    write_csv(tmp_path / "raw.csv", rows)
    numeric = ["height_mm", "weight_g"]
    train = rows[:120]  # validation_split 0.2: the last 30 rows
    stats = {c: (np.mean([r[c] for r in train]), np.std([r[c] for r in train]))
             for c in numeric}
    write_csv(tmp_path / "scaled.csv", [
        {**r, **{c: (r[c] - stats[c][0]) / stats[c][1] for c in numeric}} for r in rows])
    data = {"source": "csv", "label": "species", "features": numeric,
            "validation_split": 0.2, "split": "tail", "batch_size": 16}
    logs = {}
    for name, path, adapt in (("adapted", "raw.csv", True), ("by-hand", "scaled.csv", False),
                              ("raw", "raw.csv", False)):
        config = table_config(name, {**data, "path": path}, adapt=adapt, inputs=2, epochs=4)
        assert cli("train", write_config(tmp_path, config, f"{name}.yaml"), "--runs-dir",
                   tmp_path / name, "-q") == 0
        logs[name] = read_log(only_run(tmp_path / name) / "log.csv")
    for a, b in zip(logs["adapted"], logs["by-hand"], strict=True):
        assert float(a["val_loss"]) == pytest.approx(float(b["val_loss"]), rel=1e-3)
    assert float(logs["adapted"][-1]["val_accuracy"]) >= 0.75
    assert float(logs["raw"][-1]["val_loss"]) > 3 * float(logs["adapted"][-1]["val_loss"])


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    """For a csv, an image and a text-table run: one uninterrupted, one SIGKILLed and resumed.

    The kill is the state writer's fault hook (as in test_resume.py): the process SIGKILLs
    itself while saving epoch 3's state, so epoch 2's state is the newest whole one and
    log.csv already holds a row of epoch 3 that resume must drop and redo. A kill from a
    watching process would race with these sub-second epochs on a loaded machine."""
    root = tmp_path_factory.mktemp("resume_sources")
    write_csv(root / "animals.csv", table_rows(200))
    write_images(root / "shapes", per_class=16)
    write_csv(root / "reviews.csv", review_rows())
    configs = {
        "csv": table_config("csv", {"source": "csv", "path": "animals.csv",
                                    "label": "species", "validation_split": 0.2,
                                    "batch_size": 8}, epochs=5),
        "images": image_config("images", {"path": "shapes", "validation_split": 0.25,
                                          "batch_size": 4}, epochs=5),
        # Decoded once into the run directory; the resumed process reads that copy.
        "images_disk": image_config("images_disk", {"path": "shapes", "validation_split": 0.25,
                                                    "batch_size": 4, "cache": "disk"},
                                    epochs=5),
        # Named inputs from a table, raw text and a number adapted again on resume.
        "text": text_graph_config("text", REVIEWS_DATA, epochs=5),
    }
    # Only the kill needs a process of its own: the uninterrupted runs train in this
    # process meanwhile, and the resumes follow here (cbrun starts each run from a clean
    # Keras session; a process start and a TensorFlow import saved for each).
    paths = {name: write_config(root, config, f"{name}.yaml") for name, config in configs.items()}
    kills = {name: cbrun_process("train", path, "--runs-dir", root / name / "killed", "-q",
                                 env={FAULT_ENV: "3"}) for name, path in paths.items()}
    codes = {name: cli("train", path, "--runs-dir", root / name / "baseline", "-q")
             for name, path in paths.items()}
    errs = {name: proc.communicate(timeout=HANG_S)[1] for name, proc in kills.items()}
    out = {}
    for name in configs:
        run = only_run(root / name / "killed")
        rows_at_kill = len(read_log(run / "log.csv"))
        out[name] = {"baseline": only_run(root / name / "baseline"), "resumed": run,
                     "codes": (codes[name], kills[name].returncode, cli("resume", run)),
                     "rows_at_kill": rows_at_kill, "err": errs[name]}
    return out


@pytest.mark.parametrize("name", ["csv", "images", "images_disk", "text"])
def test_a_killed_and_resumed_run_equals_the_uninterrupted_one_byte_for_byte(resumed, name):
    result = resumed[name]
    assert result["codes"] == (0, -signal.SIGKILL, 0), result["err"]
    assert result["rows_at_kill"] == 3, "killed while saving epoch 3's state"
    baseline = (result["baseline"] / "log.csv").read_bytes()
    assert len(read_log(result["baseline"] / "log.csv")) == 5
    assert (result["resumed"] / "log.csv").read_bytes() == baseline


def test_each_cache_gives_the_batches_streaming_gives(tmp_path):
    from cbrun.config.data.images import ImagesData
    from cbrun.engine.data import train_dataset
    from cbrun.engine.sources import load_splits

    write_images(tmp_path / "shapes", per_class=4)
    batches = {}
    for cache in (None, "memory", "disk"):
        cfg = ImagesData(source="images", path="shapes", image_size=[8, 8], cache=cache,
                         validation_split=0.25)
        splits = load_splits(cfg, tmp_path, tmp_path / "run", seed=42)
        assert splits.train.streamed == (cache != "memory")
        dataset, order = train_dataset(splits.train, 3, seed=5, shuffle=True, steps=2)
        order.set_epoch(2)
        batches[cache] = [(x.numpy(), y.numpy()) for x, y in dataset]
    # The disk copy: one file of raw pixels per image, in the run directory.
    cached = sorted((tmp_path / "run" / "cache" / "images" / "train").glob("*.f32"))
    assert len(cached) == 6 and cached[0].stat().st_size == 8 * 8 * 3 * 4
    for cache in ("memory", "disk"):
        for (xa, ya), (xb, yb) in zip(batches[None], batches[cache], strict=True):
            np.testing.assert_array_equal(ya, yb)
            np.testing.assert_allclose(xa, xb)


def test_a_complete_disk_cache_is_reused_and_a_changed_folder_decoded_again(tmp_path):
    from cbrun.config.data.images import ImagesData
    from cbrun.engine.sources import load_splits

    write_images(tmp_path / "shapes", per_class=3)
    cfg = ImagesData(source="images", path="shapes", image_size=[8, 8], cache="disk")
    load_splits(cfg, tmp_path, tmp_path / "run", seed=42)
    first = tmp_path / "run" / "cache" / "images" / "train" / "0000000.f32"
    first.write_bytes(b"\0" * first.stat().st_size)  # a mark: kept only if not redone
    load_splits(cfg, tmp_path, tmp_path / "run", seed=42)
    assert first.read_bytes() == b"\0" * first.stat().st_size
    (tmp_path / "shapes" / "bar" / "00.jpg").unlink()
    splits = load_splits(cfg, tmp_path, tmp_path / "run", seed=42)
    assert len(splits.train) == 5
    assert first.read_bytes() != b"\0" * first.stat().st_size


def test_discretization_adapts_its_bins_on_the_training_rows_only(tmp_path):
    """The bins come from the training split (validation rows excluded) and travel inside
    model.keras."""
    import keras

    rows = [{"x": float(i), "label": i % 2} for i in range(100)]
    write_csv(tmp_path / "ramp.csv", rows)
    config = table_config("bins", {"source": "csv", "path": "ramp.csv", "label": "label",
                                   "validation_split": 0.2, "split": "tail"}, units=2,
                          adapt=False, inputs=1, epochs=1)
    config["model"]["layers"].insert(0, {"type": "Discretization", "num_bins": 4,
                                         "adapt": True})
    assert cli("train", write_config(tmp_path, config), "--runs-dir", tmp_path / "runs",
               "-q") == 0
    model = keras.saving.load_model(only_run(tmp_path / "runs") / "model.keras")
    # Quartiles of 0..79, the training rows; the last 20 rows (80..99) are not seen.
    assert model.layers[0].bin_boundaries == pytest.approx([20.0, 40.0, 60.0], abs=1.0)
