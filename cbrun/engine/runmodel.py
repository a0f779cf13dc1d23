"""Load a run's model at a checkpoint (`last`, `best` or a file; which file that is, is
decided on the lower floor in cbrun/run/checkpoints.py).

A whole-model file (.keras) is loaded as Keras saved it; weights (.weights.h5) and saved
states go into the model the run's resolved config builds. Either way the model is
compiled from the config, as the run compiled it, so `evaluate` computes the same loss and
metrics that log.csv holds.

Whatever a file holds that Keras cannot read is one line naming the file (exit 2): the
lower floor checked the archive already (cbrun/run/checkpoints.py), this catches the rest.
"""

from __future__ import annotations

import io
import zipfile
import zlib

import keras
import numpy as np

from cbrun.engine.model import build_model, compile_model
from cbrun.errors import UsageError
from cbrun.run.checkpoints import Checkpoint
from cbrun.run.handle import OpenRun


def load_run_model(run: OpenRun, checkpoint: Checkpoint, compile: bool = True) -> keras.Model:
    config = run.config
    if checkpoint.kind == "model":
        model = _load_file(run, checkpoint)
    else:
        keras.backend.clear_session()
        keras.utils.set_random_seed(config.seed)
        model = build_model(config, run.config_dir)
        if checkpoint.kind == "weights":
            try:
                model.load_weights(checkpoint.path)
            except ValueError as exc:
                raise UsageError(f"{checkpoint.path} does not fit the model of "
                                 f"{run.run_dir}: {_first_line(exc)}") from None
            except _UNREADABLE as exc:
                raise UsageError(f"Keras could not read the weights in {checkpoint.path}: "
                                 f"{_first_line(exc)}") from None
        else:
            _assign_state(model, checkpoint)
    if compile:
        compile_model(model, config, 1)
    return model


# What Keras and h5py raise on bytes they cannot make sense of.
_UNREADABLE = (OSError, KeyError, TypeError, EOFError, zlib.error, zipfile.BadZipFile)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _load_file(run: OpenRun, checkpoint: Checkpoint) -> keras.Model:
    config = run.config
    if config.model.kind == "factory":
        # Custom layers register themselves when the factory's module is imported.
        from cbrun.callbacks.imports import import_object

        import_object(run.config_dir, config.model.factory, ("model", "factory"),
                      "functions", callable)
    try:
        return keras.saving.load_model(checkpoint.path, compile=False,
                                       safe_mode=checkpoint.safe_mode)
    except (ValueError, *_UNREADABLE) as exc:
        if checkpoint.safe_mode and "safe_mode" in str(exc):
            raise UsageError(_unsafe_message(run, checkpoint)) from None
        raise UsageError(f"Keras could not load {checkpoint.path}: {_first_line(exc)}") \
            from None


def _unsafe_message(run: OpenRun, checkpoint: Checkpoint) -> str:
    """Keras's advice (pass safe_mode=False to the loading function) in cbrun's terms."""
    why = ("the run wrote it, but its config builds the model without code of its own"
           if checkpoint.own else f"{run.run_dir} did not write it")
    return (f"{checkpoint.path} holds Python code that Keras would run to load it (a "
            f"Lambda layer), and cbrun loads it with safe_mode on: {why}. If you trust "
            "this file, add --no-safe-mode (safe_mode=False in the Python API)")


def _assign_state(model: keras.Model, checkpoint: Checkpoint) -> None:
    """The model variables of a saved state (cbrun/state/capture.py writes them as m0, m1,
    ... in `model.variables` order; optimizer variables are not needed here), from the
    bytes read when it was chosen: the run may have pruned the folder since."""
    state = checkpoint.state
    if state is None:  # a Checkpoint made by hand: read it as choose_checkpoint does
        from cbrun.run.checkpoints import read_state

        state = read_state(checkpoint.path)
    meta = state.meta
    shapes = [list(v.shape) for v in model.variables]
    if meta.get("model_shapes") != shapes:
        raise UsageError(f"the saved state {checkpoint.path} does not fit the model the run's "
                         f"resolved.yaml describes (variable shapes {meta.get('model_shapes')}"
                         f" saved, {shapes} built); was resolved.yaml edited?")
    try:
        with np.load(io.BytesIO(state.variables)) as data:
            for index, variable in enumerate(model.variables):
                variable.assign(data[f"m{index}"])
    except (ValueError, *_UNREADABLE) as exc:  # a state from before checksums, damaged
        raise UsageError(f"the saved state {checkpoint.path} is damaged: variables.npz: "
                         f"{_first_line(exc)}") from None
