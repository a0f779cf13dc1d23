"""Custom: a user's own keras.callbacks.Callback subclass, named by import path."""

from __future__ import annotations

import inspect
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator

from cbrun.callbacks.base import CallbackSpec
from cbrun.callbacks.imports import check_import_path, fail, import_object
from cbrun.config.base import BuildContext

# The hooks Keras calls at every training batch (its on_train_batch_* call on_batch_*), so a
# class overriding one needs steps_per_execution 1. on_test_batch_* and on_predict_batch_*
# run outside training steps and do not pin it.
_BATCH_HOOKS = ("on_batch_begin", "on_batch_end", "on_train_batch_begin",
                "on_train_batch_end")


# Packages whose callbacks cbrun declares by `type` (with their paths checked) or refuses;
# reached through `Custom` they would slip past both.
_KERAS_PACKAGES = ("keras", "tensorflow", "tf_keras")


# Keras's callbacks that cbrun declares by `type:` (the registry's built-in specs of Keras
# classes; a test keeps the two lists equal). The registry holds this spec, so this module
# cannot ask it.
KERAS_DECLARED = frozenset({
    "EarlyStopping", "ModelCheckpoint", "CSVLogger", "TensorBoard", "ReduceLROnPlateau",
    "LearningRateScheduler", "TerminateOnNaN", "SwapEMAWeights", "RemoteMonitor",
    "LambdaCallback"})


def _keras_owned(name: str, where: str) -> str | None:
    """Why a Keras callback class named `name` cannot be a Custom one, or None when it is
    not one cbrun knows (a user's class of the same name)."""
    from cbrun.callbacks.unsupported import UNSUPPORTED

    refused = {spec.model_fields["type"].annotation.__args__[0]: spec for spec in UNSUPPORTED}
    if name in refused:
        return f"{where} is Keras's {name}, which cbrun refuses: {refused[name].reason}"
    if name not in KERAS_DECLARED:
        return None
    return (f"{where} is Keras's own {name}; declare it as `type: {name}` so cbrun checks "
            f"its parameters (and keeps its files inside the run directory)")


def _refused_class(cls: type, given: str) -> str | None:
    """The reason to refuse `cls`, however it was imported: a Keras callback itself, or a
    subclass of one that cbrun refuses (BackupAndRestore would restore over cbrun's state)."""
    from cbrun.callbacks.unsupported import UNSUPPORTED

    if cls.__module__.split(".")[0] in _KERAS_PACKAGES:
        return _keras_owned(cls.__name__, f"{given} ({cls.__module__}.{cls.__name__})") or (
            f"{given} is Keras's {cls.__name__}, not your own callback; Custom runs classes "
            f"you wrote (see `cbrun callbacks` for the Keras ones cbrun declares by type)")
    refused = {spec.model_fields["type"].annotation.__args__[0] for spec in UNSUPPORTED}
    for base in cls.__mro__[1:]:
        if base.__module__.split(".")[0] in _KERAS_PACKAGES and base.__name__ in refused:
            return _keras_owned(base.__name__, f"{given} subclasses {base.__name__}, so it")
    return None


class CustomSpec(CallbackSpec):
    """Your own callback: a `keras.callbacks.Callback` subclass, built with `params`.

    THIS RUNS YOUR CODE: building the callback imports the module named in `class` and
    calls the class with `params` as keyword arguments. The folder of the config file is
    searched first, so `class: my_callbacks:LogTime` finds `my_callbacks.py` next to the
    YAML. Only the module path and the parameter names are checked by `cbrun validate`;
    the import happens when training starts. Keras's own callbacks are declared by their
    `type`, not through Custom: a class of Keras itself (however its module is spelled),
    or a subclass of one cbrun refuses (BackupAndRestore, ProgbarLogger, ...), is refused.
    """

    model_config = ConfigDict(serialize_by_alias=True)

    type: Literal["Custom"]
    class_: str = Field(alias="class", description=(
        "`package.module:ClassName` of a keras.callbacks.Callback subclass; the config's "
        "folder is searched first. Required."))
    params: dict[str, Any] = Field(default_factory=dict, description=(
        "Keyword arguments for the class. Defaults to `{}`."))

    summary = "Your own keras.callbacks.Callback subclass (runs your code)."

    @field_validator("class_")
    @classmethod
    def _import_path(cls, value: str) -> str:
        check_import_path(value, "class", "'module:ClassName' (e.g. "
                          "'my_callbacks:LogTime' for a my_callbacks.py next to the "
                          "config)")
        module, _, attr = value.partition(":")
        if module.split(".")[0] in _KERAS_PACKAGES:
            reason = _keras_owned(attr.split(".")[-1], f"class {value!r}")
            raise ValueError(reason or (
                f"class {value!r} names a class of Keras itself; Custom runs callback classes "
                f"you wrote (see `cbrun callbacks` for the Keras ones cbrun declares by type)"))
        return value

    @field_validator("params")
    @classmethod
    def _keyword_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        bad = [key for key in value if not key.isidentifier()]
        if bad:
            raise ValueError(f"params keys become keyword arguments, so they must be Python "
                             f"identifiers; got {bad[0]!r}")
        return value

    def load_class(self, ctx: BuildContext) -> type:
        """Import and return the class; ConfigError (loc `class`) when that fails."""
        import keras

        def is_callback(value: Any) -> bool:
            return isinstance(value, type) and issubclass(value, keras.callbacks.Callback)

        target = import_object(ctx.config_dir, self.class_, ("class",), "Callback classes",
                               is_callback)
        if not is_callback(target):
            raise fail(("class",), f"{self.class_} is {type(target).__name__} {target!r}, "
                                   f"not a subclass of keras.callbacks.Callback")
        refused = _refused_class(target, self.class_)
        if refused:
            raise fail(("class",), refused)
        return target

    def build(self, ctx: BuildContext) -> Any:
        cls = self.load_class(ctx)
        try:
            return cls(**self.params)
        except TypeError as exc:
            try:
                accepts = f"; {cls.__name__} takes {inspect.signature(cls)}"
            except (TypeError, ValueError):
                accepts = ""
            raise fail(("params",), f"{self.class_}(**params) failed: {exc}{accepts}") from exc

    def batch_level(self, callback: Any = None) -> bool:
        """Whether the class overrides a training-batch hook. Without the built callback the
        answer is True: unknown code may need every batch."""
        if callback is None:
            return True
        import keras

        cls, base = type(callback), keras.callbacks.Callback
        return any(getattr(cls, hook) is not getattr(base, hook) for hook in _BATCH_HOOKS)

    # A custom class joins resume by defining get_state() -> dict and set_state(dict)
    # itself (values JSON-able or numpy arrays); without them it keeps no state.
    def get_state(self, callback: Any) -> dict[str, Any] | None:
        if not _has_protocol(callback):
            return None
        return dict(callback.get_state())

    def set_state(self, callback: Any, state: dict[str, Any]) -> None:
        if _has_protocol(callback):
            callback.set_state(state)


def _has_protocol(callback: Any) -> bool:
    return callable(getattr(callback, "get_state", None)) and callable(
        getattr(callback, "set_state", None))
