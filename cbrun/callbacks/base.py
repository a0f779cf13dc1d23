"""The base of every callback spec.

A spec is a pydantic model whose fields are the Keras callback's own parameters, with
Keras's names and defaults, checked as strictly as their meaning allows. `build(ctx)`
imports Keras inside and returns the Keras callback.

A spec also owns its callback's whole runtime life: which attributes are its state (saved
every epoch, put back after `on_train_begin` on resume), what it says when it acts, the
epoch it stopped the run at, what `--continue-after-early-stop` undoes, which files it
writes in the run directory and how they are rewound on resume. The training session only
loops over (spec, built callback) pairs; see docs/ARCHITECTURE.md, "Adding a callback".

Specs validate in pydantic's strict mode: YAML `patience: true` or `patience: "5"` is an
error, not 1 or 5. The one loosening is `Float`, which takes `1e-5`: PyYAML reads that
spelling (no dot) as a string, and users write it all the time.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, ConfigDict, Field

from cbrun.config.base import BuildContext, StrictModel

Mode = Literal["auto", "min", "max"]

# What cbrun itself writes in a run directory (docs/ARCHITECTURE.md, "The run directory");
# a callback writing
# there would clobber it or be clobbered. log.csv is absent on purpose: CSVLogger's default.
# data/: what the data source learned (classes, vocabularies); cache/: decoded images;
# tracking.log: what a tracked run's tracking process said (its crash's last words)
RESERVED_RUN_PATHS = ("config.yaml", "resolved.yaml", "run.json", "model.keras", "state",
                      "data", "cache", "tracking.log")

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
    if parts and (parts[0] in ("state", "data", "cache") or (len(parts) == 1 and parts[0] in RESERVED_RUN_PATHS)):
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


def run_relative(value: str) -> PurePosixPath:
    """A run-relative path as one spelling: `./log.csv`, `logs/../log.csv` -> `log.csv`."""
    return PurePosixPath(posixpath.normpath(value.replace("\\", "/")))


@dataclass(frozen=True)
class RewindPoint:
    """Where a resumed run picks up: what `CallbackSpec.rewind` cuts its files back to.

    state: this callback's state as saved with that epoch (None: no saved state, the run
        starts again from epoch 1). optimizer_iterations: training steps done by then.
    """

    run_dir: Path
    epochs_done: int
    state: dict[str, Any] | None
    optimizer_iterations: int


class CallbackSpec(StrictModel):
    """Base of every callback spec. Subclasses set `type: Literal["Name"]`.

    The runtime hooks below receive the Keras callback `build` returned; they read it with
    plain attribute access, so this module never imports Keras.
    """

    model_config = ConfigDict(strict=True)

    type: str

    # Field names holding paths relative to the run directory; resolved by build().
    path_fields: ClassVar[tuple[str, ...]] = ()
    # One line for `cbrun callbacks`. (Parameters of older Keras are not the spec's
    # business: cbrun.config.legacy reports them, at their line, before the schema runs.)
    summary: ClassVar[str] = ""
    # Attributes of the built callback that change while training (read from Keras's own
    # source). Keras's on_train_begin resets them, so a resume puts them back afterwards.
    state_attrs: ClassVar[tuple[str, ...]] = ()
    # What Keras does on an epoch where `monitor` was not logged (validation_freq > 1).
    missing_monitor_effect: ClassVar[str] = "Keras warns and the callback skips the epoch"

    def build(self, ctx: BuildContext) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def batch_level(self, callback: Any = None) -> bool:
        """True when the callback must see every batch (so cbrun keeps steps_per_execution=1).
        `callback`: the built callback, for a spec that can only tell from it (Custom)."""
        return False

    def monitored(self) -> list[tuple[tuple[Any, ...], str]]:
        """(field loc relative to this spec, metric name) pairs the run must log."""
        monitor = getattr(self, "monitor", None)
        return [(("monitor",), monitor)] if isinstance(monitor, str) else []

    def cross_check(self, config: Any) -> list[tuple[tuple[Any, ...], str]]:
        """Rules that need the whole validated config: (loc relative to this spec, message)."""
        return []

    # --- the built callback's runtime life -------------------------------------------

    def get_state(self, callback: Any) -> dict[str, Any] | None:
        """What to save with every epoch; None when the callback keeps nothing worth it.
        Values must be JSON-able or numpy arrays (lists of arrays: best weights)."""
        if not self.state_attrs:
            return None
        return {name: plain_value(getattr(callback, name, None)) for name in self.state_attrs}

    def set_state(self, callback: Any, state: dict[str, Any]) -> None:
        """Put a saved state back, after Keras's on_train_begin has reset the callback."""
        for name, value in state.items():
            setattr(callback, name, value)

    def events(self, callback: Any, epoch: int, logs: dict[str, Any], model: Any) -> list[str]:
        """What the callback did at the end of 0-based `epoch`, one line per act, said to
        the user under that epoch's line (a checkpoint written, the run stopped)."""
        return []

    def begin_events(self, callback: Any) -> None:
        """Called once before the first epoch; remember what `events` compares against."""

    def stopped_epoch(self, callback: Any) -> int | None:
        """The 1-based epoch at which this callback ended the run, or None."""
        return None

    def judges(self, monitor: str) -> bool:
        """Whether this callback's own best value for `monitor` is the run's best (the
        epoch whose weights it may restore)."""
        return False

    def best(self, callback: Any) -> tuple[int, float] | None:
        """(1-based epoch, value) of the best value so far, for a callback that judges."""
        return None

    def continue_after_early_stop(self, state: dict[str, Any]) -> dict[str, Any]:
        """The saved state with this callback's decision to stop undone."""
        return state

    def run_files(self) -> list[PurePosixPath]:
        """Files and folders the callback writes, relative to the run directory."""
        return []

    def rewind(self, point: RewindPoint) -> int:
        """On resume, drop what the callback wrote past `point` (it writes it again);
        returns how many rows or events were dropped."""
        return 0

    def kwargs(self, ctx: BuildContext, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
        """The fields as Keras keyword arguments, with run-relative paths resolved."""
        data = self.model_dump(exclude={"type", *exclude})
        for name in self.path_fields:
            if data.get(name) is not None:
                data[name] = str(ctx.resolve(data[name]))
        return data


def plain_value(value: Any) -> Any:
    """numpy scalars and tensors to Python numbers; lists of weights to numpy arrays."""
    import numpy as np

    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [plain_value(v) if not hasattr(v, "shape") or np.ndim(v) == 0
                else np.asarray(v) for v in value]
    if hasattr(value, "numpy"):
        array = np.asarray(value.numpy())
        return array.item() if array.ndim == 0 else array
    return value


# Field descriptions shared by several callbacks.
MONITOR_DOC = ("The logged metric to watch, e.g. `val_loss` or `val_accuracy` (`val_` prefix "
               "for the validation value). It must be a key the run really logs.")
MODE_DOC = ("`min`: improvement means the value went down; `max`: up; `auto`: inferred from "
            "the metric (loss and errors go down, accuracy-like metrics go up).")
VERBOSE_DOC = "1 prints a message when the callback acts, 0 is silent."
Verbose = Annotated[int, Field(ge=0, le=1)]
