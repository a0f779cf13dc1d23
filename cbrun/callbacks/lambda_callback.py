"""LambdaCallback: Keras's hook-by-hook callback, each hook a function named by import path."""

from __future__ import annotations

import inspect
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from cbrun.callbacks.base import CallbackSpec
from cbrun.callbacks.imports import check_import_path, fail, import_object
from cbrun.config.base import BuildContext

# Every hook of keras.callbacks.Callback (Keras 3.15), with the arguments Keras passes.
EPOCH_ARGS, BATCH_ARGS, LOGS_ONLY = ("epoch", "logs"), ("batch", "logs"), ("logs",)
HOOKS: dict[str, tuple[str, ...]] = {
    "on_epoch_begin": EPOCH_ARGS, "on_epoch_end": EPOCH_ARGS,
    "on_train_begin": LOGS_ONLY, "on_train_end": LOGS_ONLY,
    "on_train_batch_begin": BATCH_ARGS, "on_train_batch_end": BATCH_ARGS,
    "on_batch_begin": BATCH_ARGS, "on_batch_end": BATCH_ARGS,
    "on_test_begin": LOGS_ONLY, "on_test_end": LOGS_ONLY,
    "on_test_batch_begin": BATCH_ARGS, "on_test_batch_end": BATCH_ARGS,
    "on_predict_begin": LOGS_ONLY, "on_predict_end": LOGS_ONLY,
    "on_predict_batch_begin": BATCH_ARGS, "on_predict_batch_end": BATCH_ARGS,
}
# Called at every training batch (on_train_batch_* call on_batch_*): steps_per_execution 1.
TRAIN_BATCH_HOOKS = ("on_train_batch_begin", "on_train_batch_end", "on_batch_begin",
                     "on_batch_end")
RUN_DIR = "run_dir"
_PATH_SHAPE = "'module:function' (e.g. 'my_hooks:log_epoch' for a my_hooks.py next to the config)"


def _hook_field(name: str) -> Any:
    args = ", ".join(HOOKS[name])
    return Field(None, description=(
        f"`module:function` called as function({args}, **params it names). "
        "Defaults to `None` (not set)."))


class LambdaCallbackSpec(CallbackSpec):
    """Keras's LambdaCallback: a function of yours for each hook you name.

    THIS RUNS YOUR CODE: when training starts, each `module:function` is imported (the
    config's folder first, as for `Custom`) and Keras calls it with the hook's arguments:
    `(epoch, logs)` for epoch hooks, `(batch, logs)` for batch hooks, `(logs)` for the
    begin/end of training, validation (`on_test_*`) and prediction. Each function also gets,
    as keyword arguments, the entries of `params` whose names it declares (all of them if it
    takes `**kwargs`), and `run_dir`, the run directory, if it declares that. A training-batch
    hook makes the run use steps_per_execution 1. cbrun cannot rewind what your functions
    write: after a kill, the epoch in progress runs (and calls them) again on resume.
    """

    type: Literal["LambdaCallback"]
    on_epoch_begin: str | None = _hook_field("on_epoch_begin")
    on_epoch_end: str | None = _hook_field("on_epoch_end")
    on_train_begin: str | None = _hook_field("on_train_begin")
    on_train_end: str | None = _hook_field("on_train_end")
    on_train_batch_begin: str | None = _hook_field("on_train_batch_begin")
    on_train_batch_end: str | None = _hook_field("on_train_batch_end")
    on_batch_begin: str | None = _hook_field("on_batch_begin")
    on_batch_end: str | None = _hook_field("on_batch_end")
    on_test_begin: str | None = _hook_field("on_test_begin")
    on_test_end: str | None = _hook_field("on_test_end")
    on_test_batch_begin: str | None = _hook_field("on_test_batch_begin")
    on_test_batch_end: str | None = _hook_field("on_test_batch_end")
    on_predict_begin: str | None = _hook_field("on_predict_begin")
    on_predict_end: str | None = _hook_field("on_predict_end")
    on_predict_batch_begin: str | None = _hook_field("on_predict_batch_begin")
    on_predict_batch_end: str | None = _hook_field("on_predict_batch_end")
    params: dict[str, Any] = Field(default_factory=dict, description=(
        "Keyword arguments for the functions: each function gets those its signature names "
        "(every one if it takes **kwargs). Defaults to `{}`."))

    summary: ClassVar[str] = "Your own functions, one per Keras hook (runs your code)."

    @field_validator(*HOOKS)
    @classmethod
    def _import_path(cls, value: str | None) -> str | None:
        if value is None:
            return value
        return check_import_path(value, "a hook", _PATH_SHAPE)

    @field_validator("params")
    @classmethod
    def _keyword_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            if not key.isidentifier():
                raise ValueError(f"params keys become keyword arguments, so they must be "
                                 f"Python identifiers; got {key!r}")
            if key in (RUN_DIR, "epoch", "batch", "logs"):
                raise ValueError(f"params cannot be named {key!r}: cbrun passes {key!r} to the "
                                 "functions itself")
        return value

    @model_validator(mode="after")
    def _some_hook(self) -> LambdaCallbackSpec:
        if not self.hooks():
            raise ValueError("LambdaCallback needs at least one hook, e.g. "
                             "`on_epoch_end: my_hooks:log_epoch`; hooks: " + ", ".join(HOOKS))
        return self

    def hooks(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in HOOKS if getattr(self, name)}

    def batch_level(self, callback: Any = None) -> bool:
        """Known from the config alone: the hooks named, not what the functions do."""
        return any(getattr(self, name) for name in TRAIN_BATCH_HOOKS)

    def build(self, ctx: BuildContext) -> Any:
        import keras

        offered = {**self.params, RUN_DIR: ctx.run_dir}
        taken: set[str] = set()
        bound = {}
        for hook, path in self.hooks().items():
            function = import_object(ctx.config_dir, path, (hook,), "functions",
                                     inspect.isfunction)
            if not callable(function):
                raise fail((hook,), f"{path} is {type(function).__name__} {function!r}, "
                                    "not a function")
            kwargs = _keywords_for(function, offered)
            taken.update(kwargs)
            _check_call(hook, path, function, kwargs)
            bound[hook] = _caller(function, HOOKS[hook], kwargs)
        unused = sorted(set(self.params) - taken)
        if unused:
            raise fail(("params", unused[0]), (
                f"no function takes {unused[0]!r}: a function gets the params its signature "
                f"names; the functions are {', '.join(self.hooks().values())}"))
        return keras.callbacks.LambdaCallback(**bound)


def _keywords_for(function: Any, offered: dict[str, Any]) -> dict[str, Any]:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return {}  # a builtin without a signature: only the hook's own arguments
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return dict(offered)
    names = {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return {k: v for k, v in offered.items() if k in names}


def _check_call(hook: str, path: str, function: Any, kwargs: dict[str, Any]) -> None:
    """The call Keras will make, tried on the signature now rather than at the first epoch."""
    args = HOOKS[hook]
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        given = ", ".join([*args, *kwargs])
        raise fail((hook,), f"{path}{signature} cannot be called as {hook} calls it, with "
                            f"({given}): {exc}") from None


def _caller(function: Any, args: tuple[str, ...], kwargs: dict[str, Any]) -> Any:
    # Keras passes `logs` by keyword to batch hooks and by position elsewhere; the user's
    # function always gets the hook's arguments by position, then its keyword arguments.
    if len(args) == 2:
        def call(first, logs=None):
            return function(first, logs, **kwargs)
    else:
        def call(logs=None):
            return function(logs, **kwargs)
    call.__name__ = getattr(function, "__name__", "hook")
    return call
