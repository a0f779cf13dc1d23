"""Hostile configs refused before anything runs: checkpoint templates that format their way
out of the run directory, refused Keras callbacks reached through `Custom`, configs that
never end, loose types for epochs and seed, and `schema -o` into places it cannot write."""

from __future__ import annotations

import os
import posixpath
import subprocess
import sys
import threading

import pytest
import yaml
from conftest import HANG_S, cli_output, tiny_config, write_config
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from cbrun.callbacks.model_checkpoint import ModelCheckpointSpec

# ---------------------------------------------------------------- checkpoint templates

RUN_DIR = "/runs/20260101-000000-x"
# Epochs and batches across the whole range, with the ones that `c` turns into '.', '/'
# and '\\' spelled out (46, 47, 92) and their neighbours.
NUMBERS = st.one_of(st.sampled_from([0, 1, 45, 46, 47, 92, 0x2F, 0x10FFFF]),
                    st.integers(0, 10**12))
FLOATS = st.floats(allow_nan=True, allow_infinity=True)

_fills = st.sampled_from(["", "/", ".", "\\", "0", "_", "x", " ", "\x00", "-", ":"])
_specs = st.builds(
    lambda fill, align, sign, width, precision, kind: (
        (fill + (align or "<") if fill else align) + sign + width + precision + kind),
    _fills, st.sampled_from(["", "<", ">", "^", "="]), st.sampled_from(["", "+", "-", " "]),
    st.sampled_from(["", "3", "05", "12"]), st.sampled_from(["", ".0", ".3"]),
    st.sampled_from(["", "c", "d", "x", "o", "b", "e", "f", "g", "%", "n", "s"]))
_placeholder = st.builds(
    lambda name, conv, spec: "{" + name + conv + (":" + spec if spec else "") + "}",
    st.sampled_from(["epoch", "batch", "loss"]), st.sampled_from(["", "", "!s", "!r"]),
    _specs)
_literal = st.sampled_from(["", ".", "..", "/", "ckpt", "a/", "../", "./", "-", "\\"])


@st.composite
def templates(draw) -> str:
    parts = draw(st.lists(st.one_of(_literal, _placeholder), min_size=1, max_size=5))
    return "checkpoints/" * draw(st.booleans()) + "".join(parts) + ".keras"


def _inside(formatted: str) -> bool:
    full = posixpath.normpath(posixpath.join(RUN_DIR, formatted.replace("\\", "/")))
    return full.startswith(RUN_DIR + "/") and "\x00" not in formatted


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(templates(), NUMBERS, NUMBERS, FLOATS)
@example("{epoch:c}.keras", 47, 1, 0.5)
@example("..{batch:/>3}.keras", 1, 1, 0.5)
@example("{epoch:c}{epoch:c}/x.keras", 46, 1, 0.5)
def test_a_checkpoint_template_stays_inside_the_run_or_is_refused(template, epoch, batch,
                                                                  loss):
    try:
        ModelCheckpointSpec(type="ModelCheckpoint", filepath=template, save_freq=5,
                            monitor="loss")
    except ValidationError:
        return  # refused up front: nothing is ever written
    try:
        formatted = template.format(epoch=epoch, batch=batch, loss=loss)
    except (ValueError, OverflowError, TypeError):
        return  # Keras fails to save it; nothing lands anywhere
    assert _inside(formatted), (template, epoch, formatted)


# ---------------------------------------------------------------- Custom callbacks


def _custom(tmp_path, class_path: str):
    return write_config(tmp_path, tiny_config(
        fit={"epochs": 1}, callbacks=[{"type": "Custom", "class": class_path}]))


@pytest.mark.parametrize("class_path, word", [
    ("keras.callbacks:BackupAndRestore", "BackupAndRestore is not needed"),
    ("keras.src.callbacks.backup_and_restore:BackupAndRestore", "BackupAndRestore is not"),
    ("tensorflow.keras.callbacks:ProgbarLogger", "ProgbarLogger is not needed"),
    ("tf_keras.callbacks:History", "History is always on"),
    ("keras.callbacks:CSVLogger", "declare it as `type: CSVLogger`"),
    ("keras.src.callbacks.model_checkpoint:ModelCheckpoint", "`type: ModelCheckpoint`"),
])
def test_custom_cannot_name_a_keras_callback(tmp_path, capsys, class_path, word):
    path = _custom(tmp_path, class_path)
    code, out, _ = cli_output(capsys, "validate", path)
    assert code == 2
    assert f"{path}:" in out and "callbacks[0].class" in out and word in out


def test_custom_that_aliases_or_subclasses_a_refused_class_is_refused_at_import(
        tmp_path, capsys):
    """Only the import can tell: a user module re-exports or subclasses Keras's class."""
    (tmp_path / "sneaky.py").write_text(
        "import keras\n"
        "from keras.callbacks import BackupAndRestore as Safe\n"
        "from keras.src.callbacks.progbar_logger import ProgbarLogger\n"
        "class Quiet(ProgbarLogger):\n    pass\n")
    runs = tmp_path / "runs"
    for name, word in (("Safe", "BackupAndRestore is not needed"),
                       ("Quiet", "sneaky:Quiet subclasses ProgbarLogger")):
        code, _, err = cli_output(capsys, "train", _custom(tmp_path, f"sneaky:{name}"),
                                  "--runs-dir", runs)
        assert code == 2, err
        assert word in err
        assert not runs.exists() or not any(runs.iterdir())  # nothing was trained


# ---------------------------------------------------------------- configs that never end


def _validate_with_timeout(path) -> subprocess.CompletedProcess:
    """In a process of its own: reading without a bound would never end, or eat memory."""
    return subprocess.run([sys.executable, "-m", "cbrun", "validate", str(path)],
                          capture_output=True, text=True, timeout=HANG_S, check=False)


def test_a_config_from_dev_zero_is_refused_on_the_bytes_read():
    result = _validate_with_timeout("/dev/zero")
    assert result.returncode == 2
    assert "more than 1,000,000 bytes were read" in result.stdout


def test_a_config_from_an_endless_pipe_is_refused(tmp_path):
    fifo = tmp_path / "config.yaml"
    os.mkfifo(fifo)
    stop = threading.Event()

    def write_forever():
        try:
            with open(fifo, "wb") as handle:
                while not stop.is_set():
                    handle.write(b"# " + b"x" * 4094 + b"\n")
        except BrokenPipeError:
            pass  # the reader stopped reading, as it should

    writer = threading.Thread(target=write_forever, daemon=True)
    writer.start()
    try:
        result = _validate_with_timeout(fifo)
    finally:
        stop.set()
    assert result.returncode == 2
    assert "a config is at most 1,000,000 bytes" in result.stdout


def test_a_config_through_a_pipe_that_ends_still_validates(tmp_path, capsys):
    """The bound must not refuse process substitution and other short pipes."""
    fifo = tmp_path / "config.yaml"
    os.mkfifo(fifo)
    text = yaml.safe_dump(tiny_config()).encode()

    def write_once():
        with open(fifo, "wb") as handle:
            handle.write(text)

    threading.Thread(target=write_once, daemon=True).start()
    result = cli_output(capsys, "validate", fifo)
    assert result.code == 0, result


# ---------------------------------------------------------------- strict epochs and seed


@pytest.mark.parametrize("key, value", [
    ("epochs", True), ("epochs", "3"), ("epochs", 3.0), ("seed", True), ("seed", "3"),
    ("seed", False)])
def test_epochs_and_seed_are_strict(tmp_path, capsys, key, value):
    config = tiny_config()
    if key == "epochs":
        config["fit"] = {"epochs": value}
    else:
        config["seed"] = value
    path = write_config(tmp_path, config)
    code, out, _ = cli_output(capsys, "validate", path)
    assert code == 2
    text = path.read_text().splitlines()
    line = next(i for i, row in enumerate(text, 1) if row.strip().startswith(f"{key}:"))
    field = "fit.epochs" if key == "epochs" else "seed"
    assert f"{path}:{line}:" in out and f"{field}: Input should be a valid integer" in out


# ---------------------------------------------------------------- schema -o


@pytest.mark.parametrize("target, says", [
    ("missing/folder/schema.json", "does not exist"),
    ("/proc/version", "cannot write it"),
    ("/proc/cbrun-schema.json", "cannot write it"),
])
def test_schema_output_that_cannot_be_written_is_one_line(tmp_path, capsys, target, says):
    output = target if target.startswith("/") else tmp_path / target
    code, _, err = cli_output(capsys, "schema", "-o", output)
    assert code == 2
    assert says in err and len(err.strip().splitlines()) == 1
