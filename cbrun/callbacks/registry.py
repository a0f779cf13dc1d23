"""The callback registry: the discriminated union of every spec, keyed by `type`.

Built at import time from the built-in specs plus third-party ones from the entry-point
group `cbrun.callbacks` (`Name = package.module:SpecClass`, where SpecClass subclasses
CallbackSpec with `type: Literal["Name"]`). A plugin that fails to load is skipped with a
`PluginWarning` (and its reason kept in PLUGIN_PROBLEMS), so one broken package cannot stop
`cbrun validate` for everyone.
"""

from __future__ import annotations

import operator
import sys
import typing
import warnings
from functools import reduce
from importlib.metadata import entry_points
from typing import Annotated

from pydantic import Field

from cbrun.callbacks.base import CallbackSpec
from cbrun.callbacks.csv_logger import CSVLoggerSpec
from cbrun.callbacks.custom import CustomSpec
from cbrun.callbacks.early_stopping import EarlyStoppingSpec
from cbrun.callbacks.lambda_callback import LambdaCallbackSpec
from cbrun.callbacks.learning_rate_scheduler import LearningRateSchedulerSpec
from cbrun.callbacks.model_checkpoint import ModelCheckpointSpec
from cbrun.callbacks.prediction_samples import PredictionSamplesSpec
from cbrun.callbacks.reduce_lr_on_plateau import ReduceLROnPlateauSpec
from cbrun.callbacks.remote_monitor import RemoteMonitorSpec
from cbrun.callbacks.swap_ema_weights import SwapEMAWeightsSpec
from cbrun.callbacks.tensorboard import TensorBoardSpec
from cbrun.callbacks.terminate_on_nan import TerminateOnNaNSpec
from cbrun.callbacks.unsupported import UNSUPPORTED

ENTRY_POINT_GROUP = "cbrun.callbacks"

BUILTIN: tuple[type[CallbackSpec], ...] = (
    EarlyStoppingSpec, ModelCheckpointSpec, CSVLoggerSpec, TensorBoardSpec,
    ReduceLROnPlateauSpec, LearningRateSchedulerSpec, TerminateOnNaNSpec, SwapEMAWeightsSpec,
    RemoteMonitorSpec, CustomSpec, LambdaCallbackSpec, PredictionSamplesSpec, *UNSUPPORTED,
)


class PluginWarning(UserWarning):
    """A third-party callback spec could not join the registry."""


def spec_name(cls: type) -> str | None:
    """The `type` tag of a spec class (`Literal["Name"]`), or None when it has none."""
    field = getattr(cls, "model_fields", {}).get("type")
    if field is None or typing.get_origin(field.annotation) is not typing.Literal:
        return None
    args = typing.get_args(field.annotation)
    return args[0] if len(args) == 1 and isinstance(args[0], str) else None


def _plugin_specs(taken: dict[str, type[CallbackSpec]]) -> tuple[dict, list[str]]:
    found: dict[str, type[CallbackSpec]] = {}
    problems: list[str] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        where = f"callback plugin {ep.name!r} ({ep.value}"
        if ep.dist is not None:
            where += f", from {ep.dist.name}"
        where += ")"
        tf_before = "tensorflow" in sys.modules
        try:
            cls = ep.load()
        except Exception as exc:  # noqa: BLE001 - a plugin's bug must not break every command
            problems.append(f"{where} failed to load: {type(exc).__name__}: {exc}; skipped")
            continue
        if not (isinstance(cls, type) and issubclass(cls, CallbackSpec)):
            problems.append(f"{where} is not a subclass of cbrun.callbacks.base.CallbackSpec; "
                            "skipped")
            continue
        name = spec_name(cls)
        if name is None:
            problems.append(f"{where} does not declare `type: Literal[\"{ep.name}\"]`; skipped")
        elif name != ep.name:
            problems.append(f"{where} declares type {name!r}, not {ep.name!r}; skipped")
        elif name in taken:
            problems.append(f"{where} has the name of cbrun's built-in {name!r}; "
                            "the built-in is kept, the plugin skipped")
        elif name in found:
            problems.append(f"{where} repeats the name {name!r} of another plugin; skipped")
        else:
            found[name] = cls
        if not tf_before and "tensorflow" in sys.modules:
            problems.append(f"{where} imports TensorFlow when loaded, which makes every cbrun "
                            "command slow; import keras inside build() instead")
    return found, problems


def _registry() -> tuple[dict[str, type[CallbackSpec]], list[str]]:
    specs = {spec_name(cls): cls for cls in BUILTIN}
    plugins, problems = _plugin_specs(specs)
    for message in problems:
        # No source line under the message: the fault is in the plugin, not in cbrun.
        warnings.warn_explicit(message, PluginWarning, filename="<cbrun plugins>", lineno=0)
    return {**specs, **plugins}, problems


SPECS, PLUGIN_PROBLEMS = _registry()

# `callbacks: list[CallbackConfig]`: pydantic reads `type` and validates only that class.
CallbackConfig = Annotated[reduce(operator.or_, SPECS.values()), Field(discriminator="type")]
