"""The base of every callback spec.

A spec is a pydantic model whose fields are the Keras callback's own parameters, with
Keras's names and defaults, checked as strictly as their meaning allows. `build(ctx)`
imports Keras inside and returns the Keras callback.

Specs validate in pydantic's strict mode: YAML `patience: true` or `patience: "5"` is an
error, not 1 or 5. The one loosening is `Float`, which takes `1e-5`: PyYAML reads that
spelling (no dot) as a string, and users write it all the time.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import PurePosixPath
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, ConfigDict, Field

from cbrun.config.base import BuildContext, StrictModel

Mode = Literal["auto", "min", "max"]

# What cbrun itself writes in a run directory (DESIGN.md section 3); a callback writing
# there would clobber it or be clobbered. log.csv is absent on purpose: CSVLogger's default.
RESERVED_RUN_PATHS = ("config.yaml", "resolved.yaml", "run.json", "model.keras", "state")

_YAML_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _yaml_float(value: Any) -> Any:
    if isinstance(value, str) and _YAML_FLOAT.fullmatch(value.strip()):
        return float(value)
    return value


Float = Annotated[float, BeforeValidator(_yaml_float), Field(allow_inf_nan=False)]
NonNegInt = Annotated[int, Field(ge=0)]
PositiveInt = Annotated[int, Field(gt=0)]
# A count of batches (save_freq, update_freq): written `minimum: 1` in the JSON Schema, the
# form editors show.
BatchCount = Annotated[int, Field(ge=1)]


def check_run_relative(value: str, what: str, example: str) -> str:
    """A callback path must stay inside the run directory: relative, no escaping '..'.
    `example` is a path that fits the callback, offered instead."""
    if not value or not value.strip():
        raise ValueError(f"{what} must not be empty; for example {example!r}")
    path = PurePosixPath(value.replace("\\", "/"))
    if path.is_absolute() or (len(value) > 1 and value[1] == ":"):
        name = path.name if path.name not in ("", ".", "..") else example
        raise ValueError(
            f"{what} {value!r} is absolute; callback paths are relative to the run directory "
            f"(for example {name!r}) so that every run keeps its own files"
        )
    depth = 0
    for part in path.parts:
        depth += -1 if part == ".." else (0 if part == "." else 1)
        if depth < 0:
            raise ValueError(
                f"{what} {value!r} escapes the run directory; use a path inside it, "
                f"such as {example!r}"
            )
    return value


def check_run_path(value: str, what: str, example: str) -> str:
    """check_run_relative, and the path must not be one that cbrun writes itself."""
    check_run_relative(value, what, example)
    parts = posixpath.normpath(value.replace("\\", "/")).split("/")
    if parts and (parts[0] == "state" or (len(parts) == 1 and parts[0] in RESERVED_RUN_PATHS)):
        raise ValueError(
            f"{what} {value!r} is where cbrun writes its own {parts[0]!r} in the run "
            f"directory; choose another name (cbrun reserves {', '.join(RESERVED_RUN_PATHS)})"
        )
    return value


def check_run_file(value: str, what: str, example: str) -> str:
    """check_run_path, and the path must name a file: Keras opens it for writing, and
    `.` or `logs/` fail there with IsADirectoryError, after the first epoch."""
    check_run_path(value, what, example)
    slashed = value.replace("\\", "/")
    name = PurePosixPath(slashed).name
    if slashed.endswith("/") or name in ("", ".", ".."):
        folder = posixpath.normpath(slashed)
        fits = (example if folder in (".", "") or name == ".."
                else f"{folder}/{PurePosixPath(example).name}")
        raise ValueError(
            f"{what} {value!r} names a folder, not a file; name the file inside it, "
            f"such as {fits!r}")
    return value


class CallbackSpec(StrictModel):
    """Base of every callback spec. Subclasses set `type: Literal["Name"]`."""

    model_config = ConfigDict(strict=True)

    type: str

    # Field names holding paths relative to the run directory; resolved by build().
    path_fields: ClassVar[tuple[str, ...]] = ()
    # One line for `cbrun callbacks`. (Parameters of older Keras are not the spec's
    # business: cbrun.config.legacy reports them, at their line, before the schema runs.)
    summary: ClassVar[str] = ""

    def build(self, ctx: BuildContext) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def batch_level(self) -> bool:
        """True when the callback must see every batch (so cbrun keeps steps_per_execution=1)."""
        return False

    def monitored(self) -> list[tuple[tuple[Any, ...], str]]:
        """(field loc relative to this spec, metric name) pairs the run must log."""
        monitor = getattr(self, "monitor", None)
        return [(("monitor",), monitor)] if isinstance(monitor, str) else []

    def cross_check(self, config: Any) -> list[tuple[tuple[Any, ...], str]]:
        """Rules that need the whole validated config: (loc relative to this spec, message)."""
        return []

    def kwargs(self, ctx: BuildContext, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
        """The fields as Keras keyword arguments, with run-relative paths resolved."""
        data = self.model_dump(exclude={"type", *exclude})
        for name in self.path_fields:
            if data.get(name) is not None:
                data[name] = str(ctx.resolve(data[name]))
        return data


# Field descriptions shared by several callbacks.
MONITOR_DOC = ("The logged metric to watch, e.g. `val_loss` or `val_accuracy` (`val_` prefix "
               "for the validation value). It must be a key the run really logs.")
MODE_DOC = ("`min`: improvement means the value went down; `max`: up; `auto`: inferred from "
            "the metric (loss and errors go down, accuracy-like metrics go up).")
VERBOSE_DOC = "1 prints a message when the callback acts, 0 is silent."
Verbose = Annotated[int, Field(ge=0, le=1)]
