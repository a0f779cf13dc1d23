"""What a state holds, taken from a model and put back: every model and optimizer variable,
each callback's state (its spec names it), the Python, NumPy and Keras random states, and
where the run stands. Keras's `on_train_begin` resets EarlyStopping, ReduceLROnPlateau and
TensorBoard, and no Keras callback can save what it has counted: each callback's spec names
the state that matters (`CallbackSpec.get_state` / `set_state`), and it is put back after
every `on_train_begin` has run (cbrun/engine/callbacks/keeper.py).

Keras is imported inside the functions that use it: this package is read by `cbrun resume`
before TensorFlow loads.
"""

from __future__ import annotations

import json
import random
from typing import Any

import numpy as np

from cbrun.errors import RunError
from cbrun.state.files import FORMAT, CapturedState, SavedState, _to_json

# `bound`: the run's (spec, built callback) pairs (cbrun/engine/callbacks/bound.py).
Bound = tuple[Any, Any]

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


def metric_variables(model: Any) -> list[Any]:
    """The accumulators of the epoch's metrics (the loss's mean, each compiled metric's
    totals and counts): what a state inside an epoch must hold for the epoch's logged values
    to come out as an uninterrupted epoch's."""
    return [v for metric in model.metrics for v in metric.variables]


def capture_state(model: Any, bound: list[Bound], epochs_done: int,
                  extra: dict[str, Any], batches_done: int = 0) -> CapturedState:
    """The state after `epochs_done` epochs and, inside the next one, `batches_done`
    batches (then the metrics' accumulators too)."""
    import keras

    variables = {f"m{i}": np.asarray(v.numpy()) for i, v in enumerate(model.variables)}
    variables.update({f"o{i}": np.asarray(v.numpy())
                      for i, v in enumerate(model.optimizer.variables)})
    metrics = metric_variables(model) if batches_done else []
    variables.update({f"s{i}": np.asarray(v.numpy()) for i, v in enumerate(metrics)})
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
        "batches_done": batches_done,
        "metric_shapes": [list(v.shape) for v in metrics],
        **extra,
    }
    # JSON now: what it holds may change once training goes on.
    text = json.dumps(meta, indent=1, allow_nan=True)  # a best value starts at inf
    arrays = {key: np.array(value) for key, value in arrays.items()}
    return CapturedState(epochs_done, variables, arrays, json.loads(text), batches_done)


def _numpy_state() -> list[Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]


def _tuple_deep(value: Any) -> Any:
    return tuple(_tuple_deep(v) for v in value) if isinstance(value, list) else value


def restore_state(saved: SavedState, model: Any, bound: list[Bound]) -> None:
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


def restore_metrics(saved: SavedState, model: Any) -> None:
    """Put a state's metric accumulators back, after Keras reset them at the start of the
    epoch it was saved in (a state inside an epoch only)."""
    shapes = saved.meta.get("metric_shapes", [])
    metrics = metric_variables(model)
    if [list(v.shape) for v in metrics] != shapes:
        raise RunError(f"the saved state in {saved.path} holds metrics of shapes {shapes}, the "
                       f"compiled model {[list(v.shape) for v in metrics]}; the state can only "
                       "continue the run it came from")
    with np.load(saved.path / "variables.npz") as data:
        for i, variable in enumerate(metrics):
            variable.assign(data[f"s{i}"])


