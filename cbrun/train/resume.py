"""Resume, the upper-floor half: save the training state at every epoch end, put it back,
and rewind the files written past it. (Whether a run may resume, and with which changes, is
decided before TensorFlow loads: cbrun/resume.py. The command: cbrun/commands/resume.py.)

Training state is everything an exact resume needs, saved at every epoch end.

    state/epoch-00006/variables.npz  every model variable (the seed generators of Dropout
                                     and friends included) and every optimizer variable
                      arrays.npz     arrays held by callbacks (EarlyStopping's best weights)
                      state.json     epoch, callback states, Python/NumPy/Keras random
                                     states, the run's best value so far
                      checksums.json the SHA-256 of the three files above, written last

A state is written into a temporary folder and renamed into place, so a kill at any instant
leaves the previous state whole; a write that fails (a full disk) leaves no temporary folder.
Resume uses the newest state whose bytes match their checksums and read back in full; a
damaged one is skipped for the spare, and with none left the run starts again from epoch 1.
Pruning keeps the newest states this run wrote: a state past the epoch just saved belongs to
a future the run no longer follows (a damaged state a restart went around) and goes.

Keras's `on_train_begin` resets EarlyStopping, ReduceLROnPlateau and TensorBoard, and no
Keras callback can save what it has counted: each callback's spec names the state that
matters (`CallbackSpec.get_state` / `set_state`), and it is put back after every
`on_train_begin` has run.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from cbrun.callbacks.base import RewindPoint
from cbrun.errors import RunError
from cbrun.resume import (
    CHECKSUMS,
    STATE_FILES,
    file_sha256,
    state_dirs,
    state_epoch,
    state_problem,
)
from cbrun.rundir import STATE_DIR
from cbrun.runguard import check_inside
from cbrun.train.callbacks import Bound

KEEP = 2  # the newest state plus one spare
FORMAT = 1
# Fault injection for the tests that kill or signal a run in the middle of a state write.
FAULT_ENV = "CBRUN_FAULT_KILL_IN_STATE_WRITE"


@dataclass
class SavedState:
    path: Path
    meta: dict[str, Any]

    @property
    def epochs_done(self) -> int:
        return int(self.meta["epochs_done"])


def _fsync_write(path: Path, write) -> None:
    with open(path, "wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())


def _global_seed_state() -> list[int] | None:
    from keras.src.backend.common import global_state
    from keras.src.random.seed_generator import GLOBAL_SEED_GENERATOR

    gen = global_state.get_global_attribute(GLOBAL_SEED_GENERATOR)
    return None if gen is None else np.asarray(gen.state.numpy()).tolist()


def _set_global_seed_state(value: list[int] | None) -> None:
    if value is None:
        return
    from keras.src.random.seed_generator import global_seed_generator

    gen = global_seed_generator()
    gen.state.assign(np.asarray(value, dtype=gen.state.dtype))


def _split_arrays(index: int, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> dict:
    """Arrays go to arrays.npz; JSON keeps a reference to them."""
    out: dict[str, Any] = {}
    for name, value in state.items():
        if isinstance(value, np.ndarray):
            key = f"cb{index}.{name}"
            arrays[key] = value
            out[name] = {"__array__": key}
        elif isinstance(value, list) and any(isinstance(v, np.ndarray) for v in value):
            keys = []
            for j, item in enumerate(value):
                key = f"cb{index}.{name}.{j}"
                arrays[key] = np.asarray(item)
                keys.append(key)
            out[name] = {"__arrays__": keys}
        else:
            out[name] = value
    return out


def _join_arrays(state: dict[str, Any], arrays: Any) -> dict[str, Any]:
    out = {}
    for name, value in state.items():
        if isinstance(value, dict) and "__array__" in value:
            out[name] = arrays[value["__array__"]]
        elif isinstance(value, dict) and "__arrays__" in value:
            out[name] = [arrays[k] for k in value["__arrays__"]]
        else:
            out[name] = value
    return out


def save_state(run_dir: Path, model: keras.Model, bound: list[Bound], epochs_done: int,
               extra: dict[str, Any]) -> Path:
    return write_state(run_dir, capture_state(model, bound, epochs_done, extra))


@dataclass
class CapturedState:
    """A state as read on the training thread: copies, so it can be written elsewhere while
    training moves on (cbrun/train/statewrite.py)."""

    epochs_done: int
    variables: dict[str, np.ndarray]
    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]


def capture_state(model: keras.Model, bound: list[Bound], epochs_done: int,
                  extra: dict[str, Any]) -> CapturedState:
    variables = {f"m{i}": np.array(v.numpy()) for i, v in enumerate(model.variables)}
    variables.update({f"o{i}": np.array(v.numpy())
                      for i, v in enumerate(model.optimizer.variables)})
    arrays: dict[str, np.ndarray] = {}
    states = []
    for index, (spec, callback) in enumerate(bound):
        state = spec.get_state(callback)
        states.append(None if state is None else {
            "class": type(callback).__name__, "state": _split_arrays(index, state, arrays)})
    meta = {
        "format": FORMAT,
        "epochs_done": epochs_done,
        "stop_training": bool(model.stop_training),
        "optimizer_iterations": int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
        "callbacks": states,
        "python_random": _to_json(random.getstate()),
        "numpy_random": _numpy_state(),
        "keras_global_seed": _global_seed_state(),
        "model_shapes": [list(v.shape) for v in model.variables],
        "optimizer_shapes": [list(v.shape) for v in model.optimizer.variables],
        **extra,
    }
    # JSON now: what it holds may change once training goes on.
    text = json.dumps(meta, indent=1, allow_nan=True)  # a best value starts at inf
    arrays = {key: np.array(value) for key, value in arrays.items()}
    return CapturedState(epochs_done, variables, arrays, json.loads(text))


def write_state(run_dir: Path, state: CapturedState) -> Path:
    """Written into a temporary folder, then renamed into place: a kill at any instant
    leaves the previous state whole."""
    epochs_done = state.epochs_done
    root = run_dir / STATE_DIR
    check_inside(run_dir, root, "the state folder")  # a link planted while training
    root.mkdir(exist_ok=True)
    final = root / f"epoch-{epochs_done:05d}"
    tmp = root / f".tmp-{final.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        _write_state(tmp, state)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a full disk leaves nothing half-written
        raise
    if final.exists():  # left by a run that was resumed from an earlier epoch
        shutil.rmtree(final)
    os.rename(tmp, final)
    _prune(root, epochs_done)
    return final


def _write_state(tmp: Path, state: CapturedState) -> None:
    _fsync_write(tmp / "variables.npz", lambda h: np.savez(h, **state.variables))
    fault_epoch, _, fault_signal = os.environ.get(FAULT_ENV, "").partition(":")
    if fault_epoch == str(state.epochs_done):  # "5" or "5:SIGTERM"
        os.kill(os.getpid(), getattr(signal, fault_signal or "SIGKILL"))
    _fsync_write(tmp / "arrays.npz", lambda h: np.savez(h, **state.arrays))
    _fsync_write(tmp / "state.json", lambda h: h.write(
        json.dumps(state.meta, indent=1, allow_nan=True).encode()))
    # Read back from disk, so the checksums are of the bytes the disk holds.
    sums = {name: file_sha256(tmp / name) for name in STATE_FILES}
    _fsync_write(tmp / CHECKSUMS, lambda h: h.write(json.dumps(sums, indent=1).encode()))


def _prune(root: Path, epochs_done: int) -> None:
    states = sorted(p for p in root.glob("epoch-*") if p.is_dir())
    for path in states:
        if state_epoch(path) > epochs_done:  # see the module docstring
            shutil.rmtree(path, ignore_errors=True)
    kept = [p for p in states if state_epoch(p) <= epochs_done]
    for old in kept[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    for tmp in root.glob(".tmp-*"):
        if not tmp.name.endswith(f"-{os.getpid()}"):
            shutil.rmtree(tmp, ignore_errors=True)  # debris of a process killed mid-write


def _to_json(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_to_json(v) for v in value]
    return value


def _numpy_state() -> list[Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]


def _tuple_deep(value: Any) -> Any:
    return tuple(_tuple_deep(v) for v in value) if isinstance(value, list) else value


def latest_state(run_dir: Path, warn=print) -> SavedState | None:
    """The newest state whose bytes match their checksums and that reads back in full; a
    damaged one is skipped, with a warning."""
    for path in state_dirs(run_dir):
        try:
            problem = state_problem(path)
            if problem is not None:
                raise ValueError(problem)
            meta = json.loads((path / "state.json").read_text())
            if meta.get("format") != FORMAT:
                raise ValueError(f"format {meta.get('format')!r}, this cbrun reads {FORMAT}")
            # Every array read in full: zip checks each member's CRC as it reads it, which
            # covers a state saved before checksums were recorded.
            with np.load(path / "variables.npz") as data:
                wanted = ([f"m{i}" for i in range(len(meta["model_shapes"]))]
                          + [f"o{i}" for i in range(len(meta["optimizer_shapes"]))])
                if sorted(data.files) != sorted(wanted):
                    raise ValueError("variables.npz does not hold every variable")
                for name in wanted:
                    data[name]
            with np.load(path / "arrays.npz") as data:
                for name in data.files:
                    data[name]
        except (OSError, ValueError, KeyError, TypeError, EOFError, SyntaxError, zlib.error,
                zipfile.BadZipFile) as exc:
            warn(f"warning: saved state {path} is damaged ({exc}); trying the one before it")
            continue
        return SavedState(path, meta)
    return None


def restore_state(saved: SavedState, model: keras.Model, bound: list[Bound]) -> None:
    meta = saved.meta
    now = ([list(v.shape) for v in model.variables],
           [list(v.shape) for v in model.optimizer.variables])
    if (meta["model_shapes"], meta["optimizer_shapes"]) != now:
        raise RunError(
            f"the saved state in {saved.path} does not fit the model or optimizer the config "
            f"now describes (variable shapes {meta['model_shapes']} saved, {now[0]} now); "
            "was resolved.yaml edited? The state can only continue the run it came from")
    with np.load(saved.path / "variables.npz") as data:
        for i, variable in enumerate(model.variables):
            variable.assign(data[f"m{i}"])
        for i, variable in enumerate(model.optimizer.variables):
            variable.assign(data[f"o{i}"])
    with np.load(saved.path / "arrays.npz") as arrays:
        if len(bound) != len(meta["callbacks"]):
            raise RunError(f"the saved state holds {len(meta['callbacks'])} callbacks, the "
                           f"config now {len(bound)}; callbacks cannot be added or removed "
                           "on resume")
        for (spec, callback), entry in zip(bound, meta["callbacks"], strict=True):
            if entry is not None:
                if entry["class"] != type(callback).__name__:
                    raise RunError(f"the saved state has a {entry['class']} where the config "
                                   f"now has a {type(callback).__name__}; callbacks cannot be "
                                   "added, removed or reordered on resume")
                spec.set_state(callback, _join_arrays(entry["state"], arrays))
    random.setstate(_tuple_deep(meta["python_random"]))
    name, keys, pos, has_gauss, cached = meta["numpy_random"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    _set_global_seed_state(meta["keras_global_seed"])


class StateKeeper(keras.callbacks.Callback):
    """Restores a saved state after every other callback's on_train_begin has reset theirs,
    and saves the state at every epoch end, after every other callback has updated theirs,
    then run.json, so that run.json never claims an epoch the state does not hold."""

    def __init__(self, run_dir: Path, tracked: list[Bound], restore: SavedState | None,
                 extra_state, after_save, learning_rate: float | None = None,
                 on_restored=None, background: bool = True):
        super().__init__()
        self.run_dir = run_dir
        self.tracked = tracked
        self.restore = restore
        self.extra_state = extra_state  # () -> dict, e.g. the run's best value so far
        # () -> (() -> None): called when the epoch ends, returns what writes run.json as
        # it was then, once the state is on disk (cbrun/train/statewrite.py)
        self.after_save = after_save
        self.learning_rate = learning_rate  # a --set on resume that replaces the saved rate
        self.on_restored = on_restored
        self.writer = state_writer(background)

    def on_train_begin(self, logs=None):
        if self.restore is not None:
            restore_state(self.restore, self.model, self.tracked)
            if self.learning_rate is not None:
                self.model.optimizer.learning_rate = self.learning_rate
        if self.on_restored is not None:
            self.on_restored()

    def on_epoch_end(self, epoch, logs=None):
        # Ctrl-C and SIGTERM only stop a run at safe points (cbrun/segment.py), none of them
        # in here; the run's end waits for the write in flight (statewrite.py): an
        # interrupted run always holds the epoch it reports.
        state = capture_state(self.model, self.tracked, epoch + 1, self.extra_state())
        self.writer.save(self.run_dir, state, self.after_save())  # then run.json

    def on_train_end(self, logs=None):
        self.writer.close()


def state_writer(background: bool):
    from cbrun.train.statewrite import StateWriter  # it imports this module

    return StateWriter(background)


def continue_after_early_stop(saved: SavedState, specs: list[Any]) -> None:
    """--continue-after-early-stop: undo, in the saved state, each callback's decision to
    stop (its spec knows what that decision is made of)."""
    saved.meta["stop_training"] = False
    for spec, entry in zip(specs, saved.meta["callbacks"], strict=False):
        if entry:
            entry["state"] = spec.continue_after_early_stop(entry["state"])


def rewind(run_dir: Path, specs: list[Any], saved: SavedState | None) -> int:
    """Cut back what the callbacks wrote after the saved state (CSV rows, TensorBoard
    events), so the resumed epochs write them once; returns how many were dropped.
    `specs` is `RunConfig.tracked_callbacks()`, the list the saved states line up with."""
    done = saved.epochs_done if saved else 0
    entries = saved.meta["callbacks"] if saved else [None] * len(specs)
    iterations = saved.meta.get("optimizer_iterations", 0) if saved else 0
    dropped = 0
    for spec, entry in zip(specs, entries, strict=False):
        state = (entry or {}).get("state") if saved else None
        for path in spec.run_files():  # rewinding opens them for writing
            check_inside(run_dir, path, f"{spec.type} file")
        dropped += spec.rewind(RewindPoint(run_dir, done, state, iterations))
    return dropped
