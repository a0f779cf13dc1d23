"""`backend: jax`: the same run as on TensorFlow (callbacks, mixed precision, exact resume,
evaluate, predict, export of its backend-neutral model.keras), and what cannot work on one
backend refused before training, naming the backend."""

from __future__ import annotations

import json
import signal

import numpy as np
import pytest
from conftest import (
    HANG_S,
    cbrun_process,
    cli_output,
    jax_cache,
    only_run,
    tiny_config,
    write_config,
)

from cbrun.state.files import FAULT_ENV

# Callbacks and options that touch the backend: checkpoints and TensorBoard histograms read
# variables, ReduceLROnPlateau sets the learning rate, PredictionSamples calls the model,
# the loss scale of mixed_float16 is optimizer state a resume must put back.
CALLBACKS = [
    {"type": "ModelCheckpoint", "filepath": "checkpoints/ep{epoch:03d}.keras"},
    {"type": "TensorBoard", "log_dir": "tensorboard", "histogram_freq": 1},
    {"type": "ReduceLROnPlateau", "monitor": "val_loss", "factor": 0.5, "patience": 0,
     "min_delta": 0.05},
    {"type": "PredictionSamples"},
]


def jax_config(**overrides) -> dict:
    config = tiny_config(name="jax", backend="jax", fit={"epochs": 4}, callbacks=CALLBACKS,
                         **overrides)
    config["compile"]["mixed_precision"] = "mixed_float16"
    return config


def train(*args, env=None) -> tuple[int, str]:
    proc = cbrun_process(*args, env=env)
    _out, err = proc.communicate(timeout=HANG_S)
    return proc.returncode, err


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("jax")
    path = write_config(root, jax_config())
    env = jax_cache(root)
    whole = train("train", path, "--runs-dir", root / "whole", "-q", env=env)
    killed = train("train", path, "--runs-dir", root / "killed", "-q",
                   env={**env, FAULT_ENV: "3"})
    resumed = (train("resume", only_run(root / "killed"), "-q", env=env)
               if killed[0] == -signal.SIGKILL else None)
    return {"root": root, "whole": whole, "killed": killed, "resumed": resumed}


def test_a_jax_run_trains_on_jax(runs):
    code, err = runs["whole"]
    assert code == 0, err[-3000:]
    run = only_run(runs["root"] / "whole")
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed" and record["epochs_done"] == 4
    assert record["versions"]["backend"] == "jax"
    assert record["versions"]["jax"]
    # JAX compiled the model: its compilation cache holds the programs.
    cache = runs["root"] / "jax-cache"
    assert cache.is_dir() and any(cache.iterdir()), "JAX compiled nothing"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        f"ep00{i}.keras" for i in range(1, 5)]
    assert list((run / "tensorboard").rglob("events.out.tfevents.*"))
    assert list((run / "predictions").iterdir())


def test_a_jax_run_killed_and_resumed_logs_byte_for_byte_like_the_whole_run(runs):
    assert runs["killed"][0] == -signal.SIGKILL, runs["killed"][1][-3000:]
    code, err = runs["resumed"]
    assert code == 0, err[-3000:]
    whole = only_run(runs["root"] / "whole")
    resumed = only_run(runs["root"] / "killed")
    record = json.loads((resumed / "run.json").read_text())
    assert record["segments"][-1]["first_epoch"] == 3
    assert (resumed / "log.csv").read_bytes() == (whole / "log.csv").read_bytes()
    # Every variable the run ended with, the optimizer's and the loss scale's included.
    with np.load(whole / "state" / "epoch-00004" / "variables.npz") as a, \
            np.load(resumed / "state" / "epoch-00004" / "variables.npz") as b:
        assert a.files == b.files
        for name in a.files:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_a_jax_run_is_evaluated_predicted_and_exported_from_its_model_keras(runs, capsys,
                                                                            tmp_path):
    run = only_run(runs["root"] / "whole")
    assert cli_output(capsys, "evaluate", run, "--json").code == 0
    samples = tmp_path / "x.npz"
    np.savez(samples, x=np.zeros((3, 64), dtype="float32"))
    result = cli_output(capsys, "predict", run, samples, "-o", tmp_path / "p.csv")
    assert result.code == 0, result.err
    assert len((tmp_path / "p.csv").read_text().splitlines()) == 4
    result = cli_output(capsys, "export", run, "-f", "saved_model", "-o", tmp_path / "sm")
    assert result.code == 0, result.err
    assert "ok: every output within" in result.out + result.err


@pytest.mark.parametrize(("overrides", "where", "says"), [
    ({"distribute": "data_parallel"}, "distribute.type",
     "Keras implements on JAX only; set backend: jax"),
    ({"backend": "jax", "distribute": "mirrored"}, "distribute.type",
     "runs on the TensorFlow backend only; on backend: jax use distribute: data_parallel"),
    ({"backend": "jax", "distribute": {"type": "one_device", "device": "/cpu:0"}},
     "distribute.type", "runs on the TensorFlow backend only"),
    ({"backend": "theano"}, "backend", "tensorflow"),
    ({"backend": "jax", "callbacks": [{"type": "TensorBoard", "profile_batch": 2}]},
     "callbacks[0].profile_batch", "Python 3.12 or later"),
])
def test_what_a_backend_cannot_run_is_refused_before_it_loads(tmp_path, capsys, overrides,
                                                              where, says):
    path = write_config(tmp_path, tiny_config(**overrides))
    for command in (("validate", path), ("train", path, "--runs-dir", tmp_path / "runs")):
        result = cli_output(capsys, *command)
        assert result.code == 2, result
        said = result.out + result.err
        assert f"{where}: " in said and says in said, said
    assert not (tmp_path / "runs").exists()


def test_data_parallel_refuses_a_loaders_dataset_it_cannot_cut_into_whole_batches(tmp_path):
    """A dataset's last, short batch would leave a process of the job without its share:
    refused, with what works instead, and nothing kept."""
    (tmp_path / "my_data.py").write_text(
        "import numpy as np\nimport tensorflow as tf\n\n\ndef load():\n"
        "    x = np.random.default_rng(0).normal(size=(50, 64)).astype('float32')\n"
        "    y = np.arange(50) % 10\n"
        "    return {'train': tf.data.Dataset.from_tensor_slices((x, y)).batch(16)}\n")
    config = tiny_config(name="loader", backend="jax", distribute={"type": "data_parallel"},
                         data={"source": "python", "function": "my_data:load"})
    code, err = train("train", write_config(tmp_path, config), "--runs-dir", tmp_path / "runs")
    assert code == 2, err[-3000:]
    assert "distribute: data_parallel needs a training split it can cut into whole" in err
    assert "Traceback" not in err
    assert not list((tmp_path / "runs").glob("*"))


def test_lr_find_and_validate_build_run_a_jax_config_on_jax(tmp_path):
    """The commands that build the config's model build it on the config's backend (what
    reads a saved model.keras, evaluate to benchmark, reads it on TensorFlow)."""
    from tests.helpers.light import run_cbrun

    path = write_config(tmp_path, tiny_config(name="jax", backend="jax"))
    # Each in a process of its own: the first to load Keras chooses its backend.
    lr_find, validate = (run_cbrun(argv, cwd=tmp_path, env=jax_cache(tmp_path)).commands[0]
                         for argv in (["lr-find", path, "--steps", "20", "-o", "lr.png"],
                                      ["validate", path, "--build", "--json"]))
    assert (lr_find.code, validate.code) == (0, 0), (lr_find.err[-2000:], validate.err[-2000:])
    assert lr_find.out.splitlines()[0].endswith(", on jax"), lr_find.out
    (found,) = json.loads(validate.out)["files"]
    assert found["built"]["backend"] == "jax", validate.out
