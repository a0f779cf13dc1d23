"""Which keys a run will log, and which way each improves, known from the config alone.

Keras warns at the end of every epoch when a callback monitors a key that is not logged
(`val_acc` when the metric is `accuracy`) and the callback then silently does nothing; a
ModelCheckpoint whose path names such a key fails at its first save; `mode: auto` on a
metric whose direction Keras cannot tell fails at the first epoch. cbrun derives the logged
keys and directions up front and refuses such a config before TensorFlow is imported.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import TypeAdapter, ValidationError

from cbrun.callbacks.base import CallbackSpec
from cbrun.callbacks.registry import CallbackConfig
from cbrun.config import keras_api
from cbrun.config.compile import CompileConfig
from cbrun.config.data import DataConfig, default_source
from cbrun.config.fit import FitConfig
from cbrun.config.root import RunConfig
from cbrun.suggest import did_you_mean

Found = list[tuple[tuple[Any, ...], str]]


def logged_keys(config: RunConfig) -> list[str]:
    """loss, each metric, their val_ twins when there is validation data, learning_rate."""
    return _logged_keys(config.compile, config.data)


def _logged_keys(compile_: CompileConfig, data: DataConfig) -> list[str]:
    train = [*compile_.loss_names(), *map(str, compile_.metric_names())]
    keys = list(train)
    if data.has_validation:
        keys += [f"val_{k}" for k in train]
    keys.append("learning_rate")
    return keys


def monitor_direction(compile_: CompileConfig, name: str) -> str | None:
    """'up', 'down', or None where Keras's `mode: auto` cannot tell (it then raises).

    Mirrors Keras's MonitorCallback: `val_` is dropped, `loss` goes down, and a metric's
    direction is that of the compiled metric object logged under the name.
    """
    metric = name.removeprefix("val_")
    if metric == "loss":
        return "down"
    if len(compile_.output_names() or []) > 1:
        # Keras matches the metric object's own name (`accuracy`), never the logged
        # `answer_accuracy` or `answer_loss`, so mode: auto fails on every per-output key.
        return None
    found = None
    for logged, item in compile_.logged_metrics():
        if str(logged) != metric:
            continue
        if isinstance(item, str):
            found = keras_api.metric_direction(item)
        else:
            entry = keras_api.api()["metrics"].get(item.type, {})
            found = entry.get("direction") or keras_api.metric_direction(item.type)
    return found


def monitor_mode(name: str, mode: str, compile_: CompileConfig) -> str:
    """'min' or 'max': the mode as written, or what `auto` resolves to."""
    if mode in ("min", "max"):
        return mode
    return "max" if monitor_direction(compile_, name) == "up" else "min"


def primary_monitor(config: RunConfig) -> tuple[str, str]:
    """The metric that sums a run up (for the summary, run.json and plots): the first
    monitored callback's metric, else val_loss or loss. Returns (name, 'min' | 'max')."""
    for spec in config.callbacks:
        for loc, name in spec.monitored():
            if loc == ("monitor",):
                return name, monitor_mode(name, getattr(spec, "mode", "auto"), config.compile)
    return ("val_loss" if config.data.has_validation else "loss"), "min"


def _not_logged(data: DataConfig, keys: list[str], spec: CallbackSpec, loc: tuple[Any, ...],
                name: str) -> str:
    if loc == ("monitor",):
        default = "" if "monitor" in spec.model_fields_set else " (the default)"
        head = f"{spec.type} monitors {name!r}{default}"
    else:
        head = f"{spec.type} {loc[-1]} uses {{{name}}}"
    train = name.removeprefix("val_")
    if name.startswith("val_") and not data.has_validation and train in keys:
        return (f"{head}, but this run has no validation data, so Keras logs no val_ values; "
                f"set data.validation_split (or data.validation_path), or use {train!r}")
    return f"{head}, which this run never logs{did_you_mean(name, keys)}; it logs: " + \
        ", ".join(keys)


def _mode_problem(compile_: CompileConfig, spec: CallbackSpec, name: str
                  ) -> tuple[tuple[Any, ...], str] | None:
    mode = getattr(spec, "mode", None)
    if mode is None:
        return None
    direction = monitor_direction(compile_, name)
    written = "mode" in spec.model_fields_set
    if mode == "auto" and direction is None:
        what = ("the learning rate is not a metric" if name == "learning_rate" else
                "Keras knows no direction for it")
        return (("mode",) if written else ("monitor",),
                (f"{spec.type} monitors {name!r} with mode: auto, but {what}, so Keras would "
                 f"fail at the first epoch; write mode: min (lower is better) or mode: max "
                 f"(higher is better)"))
    if mode in ("min", "max") and direction is not None:
        wanted = "max" if direction == "up" else "min"
        if mode != wanted:
            return (("mode",),
                    (f"mode: {mode} counts a {'higher' if mode == 'max' else 'lower'} "
                     f"{name!r} as an improvement, but {name!r} gets better as it goes "
                     f"{direction}; write mode: {wanted} (or auto)"))
    return None


def _sometimes_logged(spec: CallbackSpec, loc: tuple[Any, ...], name: str, every: int) -> str:
    """A val_ key with fit.validation_freq > 1: logged only on validation epochs."""
    if loc == ("monitor",):
        head = f"{spec.type} monitors {name!r}"
        effect = spec.missing_monitor_effect
    else:
        head = f"{spec.type} {loc[-1]} uses {{{name}}}"
        effect = "Keras cannot fill the name in and the save fails"
    train = name.removeprefix("val_")
    return (f"{head}, but fit.validation_freq is {every}, so Keras validates (and logs "
            f"{name!r}) only every {every} epochs; on the other epochs it is missing and "
            f"{effect}. Set fit.validation_freq: 1, or use the training metric {train!r}")


def check_callbacks(compile_: CompileConfig, data: DataConfig, every: int,
                    indexed: Iterable[tuple[int, CallbackSpec]]) -> Found:
    """Monitor, template and mode problems of the given (index, spec) pairs, in a run that
    validates `every` epochs."""
    keys = _logged_keys(compile_, data)
    found: Found = []
    for index, spec in indexed:
        for loc, name in spec.monitored():
            if name not in keys:
                found.append((("callbacks", index, *loc),
                              _not_logged(data, keys, spec, loc, name)))
            elif name.startswith("val_") and every > 1:
                found.append((("callbacks", index, *loc),
                              _sometimes_logged(spec, loc, name, every)))
            elif loc == ("monitor",):
                problem = _mode_problem(compile_, spec, name)
                if problem is not None:
                    found.append((("callbacks", index, *problem[0]), problem[1]))
    return found


def monitor_problems(config: RunConfig) -> Found:
    return check_callbacks(config.compile, config.data, config.fit.validation_freq,
                           enumerate(config.callbacks))


def partial_monitor_problems(data: dict[Any, Any]) -> Found:
    """Monitor problems of a config that failed validation elsewhere (a typo in a layer,
    say), so that one run of `cbrun validate` still reports them: possible whenever the
    compile and data sections and some callbacks are valid on their own."""
    callbacks = data.get("callbacks")
    if not isinstance(callbacks, list) or not callbacks:
        return []
    try:
        compile_ = CompileConfig.model_validate(data.get("compile"))
        data_ = TypeAdapter(DataConfig).validate_python(default_source(data.get("data", {})))
    except ValidationError:
        return []
    adapter = TypeAdapter(CallbackConfig)
    valid = []
    for index, raw in enumerate(callbacks):
        try:
            valid.append((index, adapter.validate_python(raw)))
        except ValidationError:
            continue
    try:
        every = FitConfig.model_validate(data.get("fit")).validation_freq
    except ValidationError:
        every = 1  # unknown: its own problem is reported
    return check_callbacks(compile_, data_, every, valid)
