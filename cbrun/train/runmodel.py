"""Load a run's model at a checkpoint (`last`, `best` or a file; which file that is, is
decided on the lower floor in cbrun/checkpoints.py).

A whole-model file (.keras) is loaded as Keras saved it; weights (.weights.h5) and saved
states go into the model the run's resolved config builds. Either way the model is
compiled from the config, as the run compiled it, so `evaluate` computes the same loss and
metrics that log.csv holds.
"""

from __future__ import annotations

import keras
import numpy as np

from cbrun.checkpoints import Checkpoint, TrainedRun
from cbrun.errors import UsageError
from cbrun.train.model import build_model, compile_model


def load_run_model(run: TrainedRun, checkpoint: Checkpoint, compile: bool = True) -> keras.Model:
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
                                 f"{run.run_dir}: {str(exc).splitlines()[0]}") from None
        else:
            _assign_state(model, checkpoint)
    if compile:
        compile_model(model, config, 1)
    return model


def _load_file(run: TrainedRun, checkpoint: Checkpoint) -> keras.Model:
    config = run.config
    safe = not (config.model.kind == "path" and not config.model.safe_mode)
    if config.model.kind == "factory":
        # Custom layers register themselves when the factory's module is imported.
        from cbrun.callbacks.imports import import_object

        import_object(run.config_dir, config.model.factory, ("model", "factory"),
                      "functions", callable)
    try:
        return keras.saving.load_model(checkpoint.path, compile=False, safe_mode=safe)
    except (ValueError, OSError) as exc:
        raise UsageError(f"Keras could not load {checkpoint.path}: "
                         f"{str(exc).strip().splitlines()[0]}") from None


def _assign_state(model: keras.Model, checkpoint: Checkpoint) -> None:
    """The model variables of a saved state (cbrun/train/resume.py writes them as m0, m1,
    ... in `model.variables` order; optimizer variables are not needed here)."""
    import json

    meta = json.loads((checkpoint.path / "state.json").read_text())
    shapes = [list(v.shape) for v in model.variables]
    if meta.get("model_shapes") != shapes:
        raise UsageError(f"the saved state {checkpoint.path} does not fit the model the run's "
                         f"resolved.yaml describes (variable shapes {meta.get('model_shapes')}"
                         f" saved, {shapes} built); was resolved.yaml edited?")
    with np.load(checkpoint.path / "variables.npz") as data:
        for index, variable in enumerate(model.variables):
            variable.assign(data[f"m{index}"])
