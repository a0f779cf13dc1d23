"""ModelCheckpoint: save the model (or its weights) during training."""

from __future__ import annotations

import math
import re
import string
import sys
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from cbrun.callbacks.base import (
    MODE_DOC,
    MONITOR_DOC,
    VERBOSE_DOC,
    BatchCount,
    CallbackSpec,
    Float,
    Mode,
    RewindPoint,
    Verbose,
    check_run_file,
    run_relative,
)
from cbrun.config.base import BuildContext
from cbrun.run.runguard import check_inside

# How many files keep_best / keep_last keep; `minimum: 1` in the JSON Schema.
FileCount = Annotated[int, Field(ge=1)]

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

    cbrun adds `keep_best` and `keep_last` (`cbrun_fields`, never passed to Keras): the
    files to keep of those the checkpoint writes; its own class deletes the others
    (cbrun/engine/callbacks/checkpoint.py, `Retention` below).
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
    keep_best: FileCount | None = Field(None, description=(
        "cbrun's own, not Keras's: keep the files of the N best `monitor` values (lower or "
        "higher by `mode`; the earlier file on a tie) and delete the others it wrote, "
        "unless `keep_last` keeps them. Needs a `filepath` that names each save apart "
        "(`{epoch}` or a metric in it). Defaults to `None`: no limit from the best."))
    keep_last: FileCount | None = Field(None, description=(
        "cbrun's own, not Keras's: keep the N newest files and delete the older ones it "
        "wrote, unless `keep_best` keeps them. Needs a `filepath` that names each save "
        "apart. Defaults to `None`: with neither key every file stays, as in Keras."))

    path_fields = ("filepath",)
    summary = "Save the model or its weights every epoch (or every N batches)."
    missing_monitor_effect = "Keras warns and, with save_best_only, saves the model anyway"
    # keras/src/callbacks/model_checkpoint.py at Keras 3.15: the best value and the batch
    # counters that decide when the next save falls.
    state_attrs = ("best", "_batches_seen_since_last_saving", "_last_batch_seen",
                   "_current_epoch")
    # Not Keras's parameters: kept out of Keras's constructor (`arguments`).
    cbrun_fields: ClassVar[tuple[str, ...]] = ("keep_best", "keep_last")

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

    @field_validator("keep_best", "keep_last", mode="before")
    @classmethod
    def _count(cls, value: Any, info: Any) -> Any:
        name = info.field_name
        if value is None or (type(value) is int and value >= 1):
            return value
        if type(value) is int:
            raise ValueError(
                f"{name} must be 1 or more: {name} {value} would delete every checkpoint as "
                f"soon as it is written; leave {name} out to keep every file")
        raise ValueError(f"{name} must be a whole number of files such as 3; got "
                         f"{type(value).__name__} {value!r}")

    @property
    def retains(self) -> bool:
        """Whether cbrun deletes some of the files this checkpoint writes."""
        return self.keep_best is not None or self.keep_last is not None

    def retention_text(self) -> str:
        return retention_text(self.keep_best, self.keep_last)

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
        if self.retains:
            self._check_retention(names)
        return self

    def _check_retention(self, names: list[str]) -> None:
        key = "keep_best" if self.keep_best is not None else "keep_last"
        if not names:
            suffix = ".weights.h5" if self.save_weights_only else ".keras"
            example = (run_relative(self.filepath).parent / f"ep{{epoch:03d}}{suffix}")
            raise ValueError(
                f"{key} chooses among the files the checkpoint writes, but filepath "
                f"{self.filepath!r} names a single file that every save overwrites; put "
                f"the epoch in it, such as '{example}', or remove {key}")
        if self.keep_best is not None and self.save_freq != "epoch" \
                and self.monitor.startswith("val_"):
            raise ValueError(
                f"keep_best ranks the files by monitor {self.monitor!r}, but with save_freq "
                f"{self.save_freq} they are written mid-epoch, before validation has run; "
                f"monitor a training metric (e.g. 'loss') or use save_freq: epoch")

    def monitored(self) -> list[tuple[tuple[Any, ...], str]]:
        # Keras reads `monitor` only with save_best_only, and cbrun with keep_best; without
        # them, the default val_loss of a run with no validation data is harmless.
        found = super().monitored() if self.save_best_only or self.keep_best else []
        for name in dict.fromkeys(template_names(self.filepath)):
            if name not in _COUNTERS:
                found.append((("filepath",), name))
        return found

    def batch_level(self, callback: Any = None) -> bool:
        return self.save_freq != "epoch"

    def arguments(self, ctx: BuildContext) -> dict[str, Any]:
        """Keras's ModelCheckpoint arguments; cbrun's own subclass checks every path it
        formats (cbrun/engine/callbacks/checkpoint.py builds it)."""
        kwargs = self.kwargs(ctx, exclude=("filepath", *self.cbrun_fields))
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
        lines = [f"checkpoint written: {folder / path.name}"
                 for path, stamp in sorted(now.items()) if seen.get(path) != stamp]
        retention = getattr(callback, "retention", None)
        if retention is not None:  # cbrun deletes these: the user hears it when it decides
            lines += [f"checkpoint not kept: {file} ({self.retention_text()})"
                      for file in retention.let_go]
            retention.let_go.clear()
        return lines

    # --- retention: keep_best / keep_last ------------------------------------------------

    def get_state(self, callback: Any) -> dict[str, Any] | None:
        state = super().get_state(callback)
        retention = getattr(callback, "retention", None)
        if retention is not None:
            state[RECORD] = retention.record()
        return state

    def set_state(self, callback: Any, state: dict[str, Any]) -> None:
        state = dict(state)
        record = state.pop(RECORD, None)
        super().set_state(callback, state)
        retention = getattr(callback, "retention", None)
        if retention is not None:
            retention.restore(record)

    def rewind(self, point: RewindPoint) -> int:
        """Delete the files a killed run wrote after the restored epoch: the restored record
        does not know them, so nothing would ever count or delete them. Only files the
        template can have named, and only what the record can vouch for: with `{epoch}` in
        the name, those of a later epoch; without it, any the record does not list, when it
        was kept from the run's first epoch."""
        if not self.retains:
            return 0
        record = ({"kept": [], "leaving": [], "from_start": True} if point.state is None
                  else point.state.get(RECORD))
        if record is None:  # saved before retention was on: those files are not ours to judge
            return 0
        known = {entry[0] for entry in record["kept"] + record["leaving"]}
        dropped = 0
        for rel, epoch in template_files(self.filepath, point.run_dir):
            past = epoch > point.epochs_done if epoch is not None else record["from_start"]
            if rel not in known and past:
                check_inside(point.run_dir, rel, "ModelCheckpoint file")
                (point.run_dir / rel).unlink(missing_ok=True)
                dropped += 1
        return dropped


# The key of the retention record in the callback's saved state.
RECORD = "cbrun_retention"


class Retention:
    """keep_best / keep_last at work, inside cbrun's ModelCheckpoint: the files it wrote and
    keeps, and those that left the kept set and wait to be deleted.

    A file that leaves the kept set at epoch k is still listed as kept by the states saved
    before k, and a resume from one of them must find it. So it is deleted only once no
    saved state from before k can be restored: every state on disk is from epoch k or later,
    and k is before the epoch now ending (the state of the epoch before may still be on its
    way to disk). The run's end deletes what is still waiting.
    """

    def __init__(self, run_dir: Path, keep_best: int | None, keep_last: int | None,
                 monitor: str):
        self.run_dir = Path(run_dir)
        self.keep_best, self.keep_last, self.monitor = keep_best, keep_last, monitor
        self.kept: list[list[Any]] = []     # [run-relative file, 1-based epoch, value], oldest first
        # [run-relative file, the first epoch whose saved state no longer keeps it]
        self.leaving: list[list[Any]] = []
        # False when files written before the record began (retention switched on at a
        # resume) may lie there unrecorded.
        self.from_start = True
        self.let_go: list[str] = []  # left the kept set since the user was last told

    def record(self) -> dict[str, Any]:
        return {"monitor": self.monitor, "from_start": self.from_start, "kept": self.kept,
                "leaving": self.leaving}

    def restore(self, record: dict[str, Any] | None) -> None:
        if record is None:  # a state saved with retention off
            self.kept, self.leaving, self.from_start = [], [], False
            return
        self.from_start = record["from_start"]
        kept = [list(entry) for entry in record["kept"]]
        if self.keep_best is not None and record["monitor"] != self.monitor:
            # Values of another metric do not rank against this one's: those files stay
            # where they are, no longer counted.
            kept, self.from_start = [], False
        # One deleted by hand is no longer there to keep.
        self.kept = [entry for entry in kept if (self.run_dir / entry[0]).is_file()]
        self.leaving = [list(entry) for entry in record["leaving"]]

    def wrote(self, file: str, epoch: int, value: Any, lower_is_better: bool) -> None:
        """Keras saved `file` at 1-based `epoch` with `monitor` at `value`."""
        value = _number(value)
        fresh = all(entry[0] != file for entry in self.kept + self.leaving)
        # The same name saved again (a metric that formats alike) is one file: the newest.
        self.kept = [entry for entry in self.kept if entry[0] != file]
        self.leaving = [entry for entry in self.leaving if entry[0] != file]
        self.kept.append([file, epoch, value])
        stay = self._chosen(lower_is_better)
        going = [entry[0] for entry in self.kept if entry[0] not in stay]
        # A new file that is not kept is in no saved state: it may go at once (0).
        self.leaving += [[name, 0 if name == file and fresh else epoch] for name in going]
        self.let_go += going
        self.kept = [entry for entry in self.kept if entry[0] in stay]

    def _chosen(self, lower_is_better: bool) -> set[str]:
        stay: set[str] = set()
        if self.keep_last is not None:
            stay.update(entry[0] for entry in self.kept[-self.keep_last:])
        if self.keep_best is not None:
            ranked = sorted(
                (i for i, entry in enumerate(self.kept) if entry[2] is not None),
                key=lambda i: (self.kept[i][2] if lower_is_better else -self.kept[i][2], i))
            stay.update(self.kept[i][0] for i in ranked[:self.keep_best])
        return stay

    def delete(self, epoch: int | None, oldest_state: int | None) -> None:
        """Delete the files waiting whose leaving no restorable state predates, at the end
        of 1-based `epoch` (None: the run's end, when all go). `oldest_state`: the epoch of
        the oldest saved state on disk, None when there is none."""
        for entry in list(self.leaving):
            file, left = entry
            if epoch is not None and (left >= epoch or (oldest_state is not None
                                                        and oldest_state < left)):
                continue
            check_inside(self.run_dir, file, "ModelCheckpoint file")
            try:
                (self.run_dir / file).unlink(missing_ok=True)
            except OSError as exc:  # open elsewhere (Windows), say: tried again at the next save
                if epoch is None:
                    print(f"warning: ModelCheckpoint could not delete {file} ({exc.strerror}); "
                          "it is still there", file=sys.stderr)
                continue
            self.leaving.remove(entry)


def retention_text(keep_best: int | None, keep_last: int | None) -> str:
    """`keep_best: 3, keep_last: 1`, as the config says it."""
    return ", ".join(f"{name}: {count}" for name, count in
                     (("keep_best", keep_best), ("keep_last", keep_last)) if count is not None)


def _number(value: Any) -> float | None:
    """A logged value as a float to rank; None for what cannot rank (missing, NaN)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def template_files(template: str, run_dir: Path) -> list[tuple[str, int | None]]:
    """(run-relative path, epoch or None) of each file in `run_dir` that the checkpoint
    template can have named: found by pattern, then kept only when formatting the template
    with the numbers read back from the name gives the name again (a file of the user's
    that merely looks alike is left out)."""
    rel = run_relative(template).as_posix()
    parsed = list(string.Formatter().parse(rel))
    pattern = "".join(re.sub(r"([\[\]*?])", r"[\1]", text) + ("*" if name is not None else "")
                      for text, name, _, _ in parsed)
    regex = re.compile("".join(re.escape(text) + ("([^/]+?)" if name is not None else "")
                               for text, name, _, _ in parsed))
    names = [name for _, name, _, _ in parsed if name is not None]
    found = []
    for path in sorted(run_dir.glob(pattern)):
        name = path.relative_to(run_dir).as_posix()
        match = regex.fullmatch(name)
        if match is None or not path.is_file():
            continue
        values = _read_back(names, match.groups())
        try:
            same = values is not None and rel.format(**values) == name
        except (ValueError, TypeError, KeyError):
            same = False
        if same:
            found.append((name, values.get("epoch")))
    return found


def _read_back(names: list[str], texts: tuple[str, ...]) -> dict[str, Any] | None:
    values: dict[str, Any] = {}
    for name, text in zip(names, texts, strict=True):
        if name in _COUNTERS:
            digits = re.search(r"-?\d+", text)
            if digits is None:
                return None
            values[name] = int(digits.group())
        else:
            try:
                values[name] = float(text)
            except ValueError:
                return None
    return values
