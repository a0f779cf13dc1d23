"""Gradient accumulation and an EMA of the weights from YAML: checked before TensorFlow,
the same numbers as the big batch they stand for, and exact across a kill inside an epoch
(the half-filled accumulators and the moving average are part of the state)."""

from __future__ import annotations

import contextlib
import io
import signal
from pathlib import Path

import numpy as np
import pytest
from conftest import HANG_S, cbrun_process, cli, cli_output, only_run, read_log, write_config

from cbrun.state.files import FAULT_AT_BATCH_ENV, state_dirs, state_position

TRAIN_ROWS = 512  # a multiple of 64: every big batch is four whole small ones
EPOCHS = 3


def config(batch_size: int, **optimizer) -> dict:
    # No Dropout or BatchNormalization: a batch of 64 and four of 16 see the same numbers.
    return {
        "name": "accum", "seed": 3,
        "data": {"source": "npz", "path": "train.npz", "validation_path": "val.npz",
                 "batch_size": batch_size},
        "model": {"input_shape": [20], "layers": [
            {"type": "Dense", "units": 16, "activation": "tanh"},
            {"type": "Dense", "units": 4, "activation": "softmax"}]},
        "compile": {"optimizer": {"type": "Adam", "learning_rate": 0.01, **optimizer},
                    "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"],
                    "steps_per_execution": 1},
        "fit": {"epochs": EPOCHS, "state_every": 5},
        "callbacks": [],
    }


def _weights(run: Path) -> list[np.ndarray]:
    import keras

    return keras.saving.load_model(run / "model.keras").get_weights()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("accumulation")
    rng = np.random.default_rng(0)
    for name, rows in (("train", TRAIN_ROWS), ("val", 128)):
        x = rng.normal(size=(rows, 20)).astype("float32")
        y = (x[:, 0] > 0).astype("int64") * 2 + (x[:, 1] > 0)
        np.savez(folder / f"{name}.npz", x=x, y=y)
    big = write_config(folder, config(64), "big.yaml")
    small = write_config(folder, config(16, gradient_accumulation_steps=4, use_ema=True,
                                        ema_momentum=0.9), "small.yaml")
    # 32 small batches an epoch, a state every 5: the kill after batch 13 of epoch 2 resumes
    # from batch 10, with two batches' gradients waiting in the accumulators. The kill needs
    # a process of its own; the rest runs in this process meanwhile (cbrun starts each run
    # from a clean Keras session; a process start and a TensorFlow import saved for each).
    proc = cbrun_process("train", small, "--runs-dir", folder / "killed", "-q",
                         env={FAULT_AT_BATCH_ENV: "1:13"})
    found = {}
    for name, path in (("big", big), ("small", small)):
        with contextlib.redirect_stderr(io.StringIO()) as err:
            code = cli("train", path, "--runs-dir", folder / name, "-q")
        assert code == 0, err.getvalue()[-3000:]
        found[name] = only_run(folder / name)
        found[f"{name}-err"] = err.getvalue()
    _out, err = proc.communicate(timeout=HANG_S)
    assert proc.returncode == -signal.SIGKILL, err[-3000:]
    killed = only_run(folder / "killed")
    found["state_at_kill"] = state_position(state_dirs(killed)[0])
    assert cli("resume", killed, "-q") == 0
    found["killed"] = killed
    return found


def test_accumulating_four_batches_of_16_trains_like_one_batch_of_64(runs):
    big, small = read_log(runs["big"] / "log.csv"), read_log(runs["small"] / "log.csv")
    assert len(big) == len(small) == EPOCHS
    for row_big, row_small in zip(big, small, strict=True):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert abs(float(row_big[key]) - float(row_small[key])) <= 1e-5, (key, row_big,
                                                                                row_small)
    # It learned: the same numbers are not those of a model that stood still.
    assert float(big[-1]["loss"]) < float(big[0]["loss"]) - 0.05


def test_a_run_killed_between_two_updates_resumes_exactly(runs):
    assert runs["state_at_kill"] == (1, 10)
    whole, resumed = runs["small"], runs["killed"]
    assert (resumed / "log.csv").read_bytes() == (whole / "log.csv").read_bytes()
    # The saved model holds the moving average (Keras writes it into the weights when
    # training ends): equal only if the average was carried over the kill too.
    for a, b in zip(_weights(whole), _weights(resumed), strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_saved_model_holds_the_average_not_the_last_weights(runs):
    """use_ema reached Keras: with it, the small run's final weights are the average, which
    differ from the big run's last weights though every update was the same."""
    differ = [not np.allclose(a, b, atol=1e-4)
              for a, b in zip(_weights(runs["big"]), _weights(runs["small"]), strict=True)]
    assert any(differ)
    # and the run says so, since its logged metrics are not the saved model's
    assert "model.keras holds the moving average" in runs["small-err"]
    assert "moving average" not in runs["big-err"]


@pytest.mark.parametrize(("options", "expected"), [
    ({"gradient_accumulation_steps": 1}, "gradient_accumulation_steps: 1 accumulates nothing"),
    ({"gradient_accumulation_steps": 2.5}, ("gradient_accumulation_steps must be a whole "
                                           "number >= 2")),
    ({"use_ema": "yes"}, "use_ema must be true or false, got 'yes'"),
    ({"use_ema": True, "ema_momentum": 1}, ("ema_momentum must be a number from 0 up to but "
                                            "not including 1")),
    ({"use_ema": True, "ema_overwrite_frequency": 0},
     "ema_overwrite_frequency must be a whole number of steps >= 1"),
    ({"ema_momentum": 0.9}, "ema_momentum has no effect without use_ema: true"),
    ({"clipnorm": 1.0, "global_clipnorm": 1.0}, ("give one of clipnorm, clipvalue, "
                                                 "global_clipnorm, not clipnorm and "
                                                 "global_clipnorm")),
    ({"weight_decay": -0.1}, "weight_decay must be a number >= 0"),
])
def test_each_option_given_wrong_is_named_at_its_line(tmp_path, capsys, options, expected):
    path = write_config(tmp_path, config(16, **options))
    key = list(options)[-1]
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1)
                if text.strip().startswith(f"{key}:"))
    code, out, _err = cli_output(capsys, "validate", path)
    assert code == 2
    assert f"{path.name}:{line}:" in out and f"compile.optimizer.{key}: {expected}" in out, out


def test_independent_optimizer_mistakes_are_reported_together(tmp_path, capsys):
    path = write_config(tmp_path, config(16, gradient_accumulation_steps=0, use_ema="no",
                                         learnig_rate=0.1))
    code, out, _err = cli_output(capsys, "validate", path)
    assert code == 2
    for key in ("gradient_accumulation_steps", "use_ema", "learnig_rate"):
        assert f"compile.optimizer.{key}:" in out, out
