"""ModelCheckpoint: save the model (or its weights) during training."""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from cbrun.callbacks.base import (
    MODE_DOC,
    MONITOR_DOC,
    VERBOSE_DOC,
    BatchCount,
    CallbackSpec,
    Float,
    Mode,
    Verbose,
    check_run_file,
    run_relative,
)
from cbrun.config.base import BuildContext

# Keras fills these itself; every other {name} comes from the logs.
_COUNTERS = ("epoch", "batch")
# str.format's spec: [[fill]align][sign][z][#][0][width][grouping][.precision][type].
_SPEC = re.compile(r"(?:(?P<fill>.)?[<>=^])?[-+ ]?z?#?0?\d*[,_]?(?:\.\d+)?(?P<type>[a-zA-Z%]?)",
                   re.DOTALL)
# Fill characters that cannot make a path separator or a '..' out of a number.
_SAFE_FILL = set(string.ascii_letters + string.digits + " _-+=~")


def _check_spec(template: str, name: str, spec: str) -> None:
    """Refuse a format that can turn a number into a path separator or '..': `c` makes a
    character of it (47 is '/'), and a fill character repeats as padding."""
    found = _SPEC.fullmatch(spec)
    if found is None:
        return  # not a spec str.format accepts; formatting the sample reports it
    if found["type"] == "c":
        raise ValueError(
            f"filepath {template!r} formats {{{name}}} with 'c', which turns the number into "
            f"a character ({name} 47 would be '/', 46 '.'); use a number format such as "
            f"{{{name}:03d}}")
    fill = found["fill"]
    if fill is not None and fill not in _SAFE_FILL:
        raise ValueError(
            f"filepath {template!r} pads {{{name}}} with {fill!r}, which would become part of "
            f"the path; pad with zeros or letters, such as {{{name}:03d}} or {{{name}:_>4}}")


def template_names(template: str) -> list[str]:
    """The `{name}`s of a str.format template, raising ValueError when it is malformed.

    Keras formats the path with `filepath.format(epoch=..., **logs)` only when it saves,
    after the first epoch; here every mistake shows up while the config is checked.
    """
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(
            f"filepath {template!r} is not a valid template ({exc}); write placeholders as "
            f"{{epoch:03d}} or {{val_loss:.3f}}, and a literal brace as '{{{{' or '}}}}'"
        ) from None
    names: list[str] = []
    for _, name, spec, _ in parsed:
        if name is None:
            continue
        if not name.isidentifier():
            what = "an empty {}" if name == "" else f"{{{name}}}"
            raise ValueError(
                f"filepath {template!r} has {what}; each placeholder must name the epoch, the "
                f"batch or a logged metric, such as {{epoch:03d}} or {{val_loss:.3f}}")
        if "{" in (spec or ""):
            raise ValueError(
                f"filepath {template!r} nests a placeholder inside the format of {{{name}}}; "
                f"write a fixed format such as {{{name}:.3f}}")
        _check_spec(template, name, spec or "")
        names.append(name)
    # Keras passes the epoch and batch as ints and every logged value as a Python float.
    sample = {n: (1 if n in _COUNTERS else 0.5) for n in names}
    try:
        template.format(**sample)
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"filepath {template!r} cannot be formatted: {exc}; epoch and batch are integers "
            f"(e.g. {{epoch:03d}}) and metrics are floats (e.g. {{val_loss:.3f}})") from None
    return names


class ModelCheckpointSpec(CallbackSpec):
    """Save the model, or only its weights, every epoch or every `save_freq` batches.

    Same parameters and defaults as `keras.callbacks.ModelCheckpoint`. `filepath` is
    relative to the run directory and may hold `str.format` placeholders: `{epoch}` (counted
    from 1), `{batch}` (with an integer `save_freq`) and any logged metric, for example
    `checkpoints/ep{epoch:03d}-val_loss{val_loss:.3f}.keras`. cbrun checks the template, the
    suffix and the metric names before training; Keras would fail at the first save.
    """

    type: Literal["ModelCheckpoint"]
    filepath: str = Field(description=(
        "Where to save, relative to the run directory, ending in `.keras` (or "
        "`.weights.h5` with `save_weights_only: true`); may hold placeholders such as "
        "`{epoch:03d}` and `{val_loss:.3f}`. Required."))
    monitor: str = Field("val_loss", min_length=1,
                         description=f"{MONITOR_DOC} Defaults to `val_loss`.")
    verbose: Verbose = Field(0, description=f"{VERBOSE_DOC} Defaults to `0`.")
    save_best_only: bool = Field(False, description=(
        "Save only when `monitor` improves on the best value so far. Defaults to `false`."))
    save_weights_only: bool = Field(False, description=(
        "Save only the weights (`model.save_weights`) instead of the whole model. "
        "Defaults to `false`."))
    mode: Mode = Field("auto", description=f"{MODE_DOC} Defaults to `auto`.")
    save_freq: Literal["epoch"] | BatchCount = Field("epoch", description=(
        "`epoch` saves at every epoch end; a positive integer N saves every N batches. "
        "Defaults to `epoch`."))
    initial_value_threshold: Float | None = Field(None, description=(
        "With `save_best_only`, a value `monitor` must beat before the first save. "
        "Defaults to `None`."))

    path_fields = ("filepath",)
    summary = "Save the model or its weights every epoch (or every N batches)."
    missing_monitor_effect = "Keras warns and, with save_best_only, saves the model anyway"
    # keras/src/callbacks/model_checkpoint.py at Keras 3.15: the best value and the batch
    # counters that decide when the next save falls.
    state_attrs = ("best", "_batches_seen_since_last_saving", "_last_batch_seen",
                   "_current_epoch")

    @field_validator("filepath")
    @classmethod
    def _template(cls, value: str) -> str:
        check_run_file(value, "filepath", "checkpoints/best.keras")
        template_names(value)
        return value

    @field_validator("save_freq", mode="before")
    @classmethod
    def _freq(cls, value: Any) -> Any:
        if value == "epoch" or (type(value) is int and value > 0):
            return value
        raise ValueError(
            f"save_freq must be 'epoch' or a positive number of batches; got {value!r}")

    @model_validator(mode="after")
    def _consistent(self) -> ModelCheckpointSpec:
        path = self.filepath
        if self.save_weights_only and not path.endswith(".weights.h5"):
            raise ValueError(
                f"filepath {path!r} must end in '.weights.h5' because save_weights_only is "
                f"true (Keras writes weights files only under that suffix); or set "
                f"save_weights_only: false to save the whole model as '.keras'")
        if not self.save_weights_only and not path.endswith(".keras"):
            if path.endswith(".weights.h5"):
                fix = "set save_weights_only: true to save only the weights, or end it in .keras"
            elif path.endswith(".h5"):
                fix = ("'.h5' whole-model files are the legacy HDF5 format; end it in '.keras', "
                       "or set save_weights_only: true and end it in '.weights.h5'")
            else:
                fix = ("end it in '.keras' to save the whole model, or set "
                       "save_weights_only: true and end it in '.weights.h5'")
            raise ValueError(f"filepath {path!r} must end in '.keras': {fix}")
        names = template_names(path)
        per_batch = self.save_freq != "epoch"
        if "batch" in names and not per_batch:
            raise ValueError(
                f"filepath {path!r} uses {{batch}}, which Keras fills only when save_freq is "
                f"a number of batches; save_freq is 'epoch', so use {{epoch}} instead")
        if per_batch:
            val = [n for n in names if n.startswith("val_")]
            if val:
                raise ValueError(
                    f"filepath {path!r} uses {{{val[0]}}}, but with save_freq "
                    f"{self.save_freq} the checkpoint is written mid-epoch, before any "
                    f"validation value exists; use a training metric or save_freq: epoch")
            if self.save_best_only and self.monitor.startswith("val_"):
                raise ValueError(
                    f"save_best_only compares monitor {self.monitor!r} when it saves, every "
                    f"{self.save_freq} batches, before validation has run; monitor a training "
                    f"metric (e.g. 'loss') or use save_freq: epoch")
        if self.initial_value_threshold is not None and not self.save_best_only:
            raise ValueError(
                "initial_value_threshold only matters with save_best_only: true; set "
                "save_best_only: true or remove initial_value_threshold")
        return self

    def monitored(self) -> list[tuple[tuple[Any, ...], str]]:
        # Keras reads `monitor` only with save_best_only; without it, the default val_loss
        # of a run with no validation data is harmless.
        found = super().monitored() if self.save_best_only else []
        for name in dict.fromkeys(template_names(self.filepath)):
            if name not in _COUNTERS:
                found.append((("filepath",), name))
        return found

    def batch_level(self, callback: Any = None) -> bool:
        return self.save_freq != "epoch"

    def arguments(self, ctx: BuildContext) -> dict[str, Any]:
        """Keras's ModelCheckpoint arguments; cbrun's own subclass checks every path it
        formats (cbrun/engine/callbacks/checkpoint.py builds it)."""
        kwargs = self.kwargs(ctx, exclude=("filepath",))
        # Keras runs str.format on the whole path: braces in the run directory are literal.
        run_dir = str(ctx.run_dir).replace("{", "{{").replace("}", "}}")
        kwargs["filepath"] = f"{run_dir}/{self.filepath}"
        return kwargs

    # Checkpoints written are seen on disk: Keras says nothing when it saves. Only files
    # matching the template count (`ep{epoch:03d}.keras` -> `ep*.keras`), so a checkpoint
    # written into the run directory itself does not make log.csv look like a new one.
    def _watched(self, callback: Any) -> dict[Path, int]:
        path = Path(callback.filepath)
        pattern = re.sub(r"\{[^}]*\}", "*", path.name)
        found = {}
        if path.parent.is_dir():
            for item in path.parent.glob(pattern):
                try:
                    found[item] = item.stat().st_mtime_ns
                except FileNotFoundError:
                    continue  # replaced while we looked
        return found

    def begin_events(self, callback: Any) -> None:
        callback.cbrun_seen = self._watched(callback)

    def events(self, callback: Any, epoch: int, logs: dict[str, Any], model: Any) -> list[str]:
        seen = getattr(callback, "cbrun_seen", {})
        now = self._watched(callback)
        callback.cbrun_seen = now
        folder = run_relative(self.filepath).parent
        return [f"checkpoint written: {folder / path.name}"
                for path, stamp in sorted(now.items()) if seen.get(path) != stamp]
