"""Keras callbacks that cbrun replaces: accepted as a `type`, rejected with the reason.

Each is a spec so that a config naming it gets one message saying what cbrun does instead,
rather than "unknown type".
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, model_validator

from cbrun.callbacks.base import CallbackSpec
from cbrun.config.base import BuildContext


class UnsupportedSpec(CallbackSpec):
    """Base of the Keras callbacks cbrun handles itself; validating one always fails."""

    # Extra keys are allowed so that the reason is the only message, not one per key.
    model_config = ConfigDict(extra="allow")

    reason: ClassVar[str] = ""

    @model_validator(mode="before")
    @classmethod
    def _refuse(cls, data: Any) -> Any:
        raise ValueError(cls.reason)

    def build(self, ctx: BuildContext) -> Any:  # pragma: no cover - never validates
        raise ValueError(self.reason)


class BackupAndRestoreSpec(UnsupportedSpec):
    """Not available: cbrun saves its own exact-resume state every epoch."""

    type: Literal["BackupAndRestore"]
    summary = "Not available: cbrun saves exact-resume state itself (cbrun resume)."
    reason = (
        "BackupAndRestore is not needed: cbrun saves its own resume state after every epoch; "
        "continue an interrupted run with `cbrun resume runs/<id>`. Keras's BackupAndRestore "
        "restores only the weights, the optimizer and the epoch, not the callbacks' state or "
        "the random state, so a resumed run would drift from an uninterrupted one. Remove it.")


class ProgbarLoggerSpec(UnsupportedSpec):
    """Not available: cbrun draws its own progress display."""

    type: Literal["ProgbarLogger"]
    summary = "Not available: cbrun draws its own progress (--quiet silences it)."
    reason = ("ProgbarLogger is not needed: cbrun draws its own progress display; "
              "`--quiet` silences it. Remove it.")


class HistorySpec(UnsupportedSpec):
    """Not available: always on."""

    type: Literal["History"]
    summary = "Not available: always on; nothing to declare."
    reason = ("History is always on (Keras adds it to every fit, and cbrun writes every "
              "epoch's values to log.csv); there is nothing to declare. Remove it.")


class BaseLoggerSpec(UnsupportedSpec):
    """Not available: Keras 3 averages metrics itself."""

    type: Literal["BaseLogger"]
    summary = "Not available: always on; nothing to declare."
    reason = ("BaseLogger is always on (Keras 3 averages the metrics over each epoch "
              "itself); there is nothing to declare. Remove it.")


class OrbaxCheckpointSpec(UnsupportedSpec):
    """Not available: use ModelCheckpoint; cbrun's own state covers resuming."""

    type: Literal["OrbaxCheckpoint"]
    summary = "Not available: use ModelCheckpoint (cbrun resume covers restarts)."
    reason = ("OrbaxCheckpoint needs the orbax-checkpoint package and saves in its own "
              "format; use `type: ModelCheckpoint` to keep models, and `cbrun resume` to "
              "continue an interrupted run.")


UNSUPPORTED = (BackupAndRestoreSpec, ProgbarLoggerSpec, HistorySpec, BaseLoggerSpec,
               OrbaxCheckpointSpec)
