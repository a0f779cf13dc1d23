"""Which file of a finished (or interrupted, or still training) run holds its model at a
checkpoint, decided without TensorFlow: `cbrun evaluate`, `predict`, `export` and
`cbrun.load_run` ask here, then `cbrun/engine/runmodel.py` loads what this names.

    last  the weights the run ended with: runs/<id>/model.keras when the run ended (with
          EarlyStopping's restore_best_weights these are its best epoch's weights, which
          the test split was evaluated with); for a run that did not end (interrupted,
          crashed, killed, still running) the newest valid saved state, whose model
          variables are the last completed epoch's
    best  the ModelCheckpoint file of the best monitored epoch: the checkpoint callback's
          monitor and mode applied to log.csv, as Keras applied them to the logs
    FILE  a .keras or .weights.h5 file (relative to the run directory, else to the current
          folder), or a saved state folder (state/epoch-00004)

A saved state is read into memory here, once, and checked against its checksums: a run
still training prunes its older states (KEEP in cbrun/state/files.py) and may remove the
chosen one at any moment; the next newest is read when one goes while it is read. A model
file is checked to be a whole .keras archive before TensorFlow loads.

safe_mode: a .keras file that holds Python code (a Lambda layer) is loaded only when the
run wrote it and its config ran code of its own to build the model (a factory, or a
`path` model with `safe_mode: false`): evaluate imports that factory anyway. Any other
file is loaded with Keras's safe_mode on unless the caller turns it off (--no-safe-mode).
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import math
import re
import zipfile
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from cbrun.errors import UsageError
from cbrun.run.handle import OpenRun
from cbrun.run.record import RunRecord, StopReason
from cbrun.run.rundir import LOG_FILE
from cbrun.run.runfiles import MODEL_FILE, RESOLVED, is_own_model_file
from cbrun.state.files import CHECKSUMS, STATE_FILES, state_dirs, state_epoch, state_position

# Runs whose process wrote model.keras as its last act (segment.py: the session saves it
# before the outcome is recorded).
_ENDED = ("completed", "stopped_early", "pruned")
# How often the newest states are listed again when each one listed was pruned while it
# was read (a run that writes states faster than they can be read).
_STATE_ROUNDS = 20
_HDF5 = b"\x89HDF\r\n\x1a\n"
_KERAS_WEIGHTS = ("model.weights.h5", "model.weights.npz")


@dataclass(frozen=True)
class StateData:
    """A saved state as read: its state.json, and the bytes of its variables.npz."""

    meta: dict[str, Any]
    variables: bytes


@dataclass(frozen=True)
class Checkpoint:
    """What to load: a whole model (.keras), weights for the config's model (.weights.h5),
    or a saved state's model variables (read already: `state`). `epoch`: the 1-based epoch
    whose weights these are, when known. `safe_mode`: Keras's, for a .keras file."""

    kind: Literal["model", "weights", "state"]
    path: Path
    epoch: int | None
    label: str  # for the user: "best: epoch 6 (val_loss 0.0912)"
    safe_mode: bool = True
    own: bool = False  # a model file the run wrote
    state: StateData | None = field(default=None, compare=False, repr=False)


def open_run(run_dir: Path) -> OpenRun:
    """The record and the resolved config of `run_dir`; one-line UsageError (or the
    config's own ConfigError) when it is no run directory cbrun can use."""
    from cbrun.config.load import load_config

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"{run_dir} is not a run directory (no such folder); give a folder "
                         "that `cbrun train` created, e.g. runs/<id>")
    record = RunRecord.load(run_dir)
    if not (run_dir / RESOLVED).is_file():
        raise UsageError(f"{run_dir} is not a complete run directory: it has no {RESOLVED}, "
                         "the config the run trained with")
    config = load_config(run_dir / RESOLVED, resolved=True).config
    return OpenRun(run_dir, record, config)


def choose_checkpoint(run: OpenRun, which: str, safe_mode: bool = True) -> Checkpoint:
    """`last`, `best` or a file, as the module docstring describes. `safe_mode=False`
    loads a .keras file that runs code even when the run did not write it."""
    if which == "last":
        chosen = _last(run)
    elif which == "best":
        chosen = _best(run)
    else:
        chosen = _file(run, which)
    if chosen.kind == "state":
        return chosen
    problem = (model_file_problem if chosen.kind == "model" else weights_file_problem)(
        chosen.path)
    if problem:
        still = (" (the run is still training: if it is writing this file now, try again "
                 "when it is done)" if run.record.file.status == "running" else "")
        raise UsageError(f"{chosen.path} is not a {chosen.kind} file cbrun can load: "
                         f"{problem}{still}")
    if chosen.kind == "weights":
        return chosen
    own = is_own_model_file(run.run_dir, run.config, chosen.path)
    model = run.config.model
    runs_code = model.kind == "factory" or (model.kind == "path" and not model.safe_mode)
    return replace(chosen, safe_mode=safe_mode and not (own and runs_code), own=own)


def model_file_problem(path: Path) -> str | None:
    """What keeps a .keras file from being a whole model Keras saved (a zip archive of
    config.json and the weights), or None; found without Keras."""
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
        if not zipfile.is_zipfile(path):
            if head == b"PK\x03\x04":
                return "it is truncated (a zip archive whose end is missing)"
            return "it is not a zip archive, as a .keras model file is"
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if "config.json" not in names:
                return "it holds no config.json, so it is no model Keras saved"
            weights = next((n for n in _KERAS_WEIGHTS if n in names), None)
            if weights is None:
                return "it holds no model.weights.h5: its weights are missing"
            damaged = archive.testzip()
            if damaged is not None:
                return f"its {damaged} is damaged (its bytes do not match their checksum)"
            json.loads(archive.read("config.json"))
            if weights.endswith(".h5"):
                with archive.open(weights) as member:
                    if member.read(8) != _HDF5:
                        return f"its {weights} is not an HDF5 file: the weights are unreadable"
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as exc:
        return f"it cannot be read ({exc})"
    except ValueError:
        return "its config.json is not valid JSON"
    return None


def weights_file_problem(path: Path) -> str | None:
    """What keeps a .weights.h5 file from being HDF5 weights, or None (a truncated one is
    found by h5py when it is read)."""
    try:
        with path.open("rb") as handle:
            if handle.read(8) != _HDF5:
                return "it is not an HDF5 file, as Keras writes weights"
    except OSError as exc:
        return f"it cannot be read ({exc.strerror})"
    return None


def read_state(path: Path) -> StateData:
    """state.json and variables.npz of a saved state, read once and checked against the
    checksums written with them (a state from before checksums is taken as read).
    FileNotFoundError when the state went while it was read; ValueError when it is
    damaged."""
    sums_path = path / CHECKSUMS
    sums = json.loads(sums_path.read_bytes()) if sums_path.exists() else None
    if sums is not None and not (isinstance(sums, dict) and set(sums) == set(STATE_FILES)):
        raise ValueError(f"{CHECKSUMS} does not list {', '.join(STATE_FILES)}")
    raw = {name: (path / name).read_bytes() for name in ("state.json", "variables.npz")}
    for name, data in raw.items():
        if sums is not None and hashlib.sha256(data).hexdigest() != sums[name]:
            raise ValueError(f"{name} does not match the checksum recorded when it was "
                             "written")
    if sums is None:  # no checksums to compare: the archive's own CRCs, member by member
        try:
            with zipfile.ZipFile(io.BytesIO(raw["variables.npz"])) as archive:
                damaged = archive.testzip()
        except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
            raise ValueError(f"variables.npz is not a whole archive ({exc})") from None
        if damaged is not None:
            raise ValueError(f"variables.npz: {damaged} is damaged")
    meta = json.loads(raw["state.json"])
    if not isinstance(meta, dict) or "model_shapes" not in meta:
        raise ValueError("state.json does not list the model's variable shapes")
    return StateData(meta, raw["variables.npz"])


def _last(run: OpenRun) -> Checkpoint:
    record, model = run.record, run.run_dir / MODEL_FILE
    file = record.file
    ended = file.status in _ENDED or file.stop_reason is StopReason.NAN_LOSS
    if ended:
        if not model.is_file():
            raise UsageError(f"{run.run_dir} ended ({file.status}) but its {MODEL_FILE} is "
                             "missing; give --checkpoint best or a checkpoint FILE")
        restored = _restored_epoch(run)
        if restored is None:
            epoch = record.epochs_done
            label = f"last: {MODEL_FILE} (epoch {epoch})"
        else:
            epoch = restored
            label = (f"last: {MODEL_FILE} (epoch {epoch}: the weights EarlyStopping "
                     "restored)")
        return Checkpoint("model", model, epoch, label)
    for _ in range(_STATE_ROUNDS):
        pruned = False
        for path in state_dirs(run.run_dir):  # newest first; a damaged one is passed over
            if state_position(path)[1]:
                continue  # inside an epoch: its weights match no row of log.csv
            try:
                data = read_state(path)
            except FileNotFoundError:
                pruned = True
                continue
            except (OSError, ValueError):
                continue
            epoch = state_epoch(path)
            return Checkpoint("state", path, epoch,
                              f"last: the saved state after epoch {epoch} (the run is "
                              f"{file.status}; {MODEL_FILE} is written when it ends)",
                              state=data)
        if not pruned:
            break
    raise UsageError(f"{run.run_dir} has not ended ({file.status}) and holds no valid "
                     "saved state yet: there are no trained weights to load")


def _restored_epoch(run: OpenRun) -> int | None:
    """The epoch whose weights an EarlyStopping with restore_best_weights put back at the
    end of the run, replaying Keras's rule on log.csv (first epoch always, then each
    improvement by more than min_delta from start_from_epoch on); None when none did."""
    spec = next((s for s in run.config.callbacks if s.type == "EarlyStopping"
                 and s.restore_best_weights), None)
    if spec is None:
        return None
    from cbrun.config.monitors import monitor_mode

    mode = monitor_mode(spec.monitor, spec.mode, run.config.compile)
    delta = abs(spec.min_delta)
    best = best_epoch = None
    for epoch, value in _column(run, spec.monitor):
        if epoch - 1 < spec.start_from_epoch:
            continue
        better = (value + delta < best if mode == "min" else value - delta > best) \
            if best is not None else True
        if best_epoch is None or better:
            best_epoch = epoch
        if better:
            best = value
    return best_epoch


def _column(run: OpenRun, name: str) -> list[tuple[int, float]]:
    """(1-based epoch, value) of a log.csv column, epochs without a value left out."""
    from cbrun.run.logs import LogError, read_log

    try:
        log = read_log(run.run_dir / LOG_FILE)
    except LogError:
        return []
    values = log.values.get(name, ())
    return [(e, v) for e, v in zip(log.epochs, values, strict=False) if not math.isnan(v)]


def _best(run: OpenRun) -> Checkpoint:
    from cbrun.config.monitors import monitor_mode

    specs = [s for s in run.config.callbacks if s.type == "ModelCheckpoint"
             and s.save_freq == "epoch"]
    # A save_best_only checkpoint's last file is its best; one written every epoch under
    # its own {epoch} name holds the best epoch too, and so does one that keeps its best
    # files (keep_best) under names its metrics make.
    usable = ([s for s in specs if s.save_best_only]
              + [s for s in specs if not s.save_best_only
                 and ("{epoch" in s.filepath or s.keep_best is not None)])
    if not usable:
        raise UsageError(f"{run.run_dir} kept no checkpoint of its best epoch: its config has "
                         "no ModelCheckpoint with save_best_only: true (or one that saves "
                         "every epoch with {epoch} in its filepath); use --checkpoint last "
                         "or a checkpoint FILE")
    primary = run.record.file.monitor
    # One that may have deleted its best file (only its newest kept) is the last resort.
    spec = min(usable, key=lambda s: (not _keeps_best(s),
                                      not (primary and s.monitor == primary.name)))
    mode = monitor_mode(spec.monitor, spec.mode, run.config.compile)
    found = None
    for epoch, value in _column(run, spec.monitor):
        if found is None or (value < found[1] if mode == "min" else value > found[1]):
            found = (epoch, value)
    threshold = spec.initial_value_threshold if spec.save_best_only else None
    if found is not None and threshold is not None and not (
            found[1] < threshold if mode == "min" else found[1] > threshold):
        found = None
    if found is None:
        raise UsageError(f"{run.run_dir}/{LOG_FILE} has no epoch where {spec.monitor} "
                         "improved, so its ModelCheckpoint saved no best model")
    epoch, value = found
    best = f"epoch {epoch} ({spec.monitor} {value:.6g})"
    path = _checkpoint_file(run.run_dir, spec.filepath, epoch, _row(run, epoch))
    if path is None:
        if not _keeps_best(spec):
            raise UsageError(
                f"the best epoch of {run.run_dir}, {best}, has no checkpoint left: its "
                f"ModelCheckpoint keeps only its newest files (keep_last: {spec.keep_last}) "
                "and deleted it; add keep_best to keep the best, and use --checkpoint last "
                "or a checkpoint FILE for this run")
        raise UsageError(f"the best checkpoint of {run.run_dir}, {best}, should be "
                         f"{_pattern(spec.filepath, epoch)}, but no such file is there; was "
                         "it deleted? Use --checkpoint last or a checkpoint FILE")
    kind = "weights" if spec.save_weights_only else "model"
    return Checkpoint(kind, path, epoch, f"best: {best}, {path.relative_to(run.run_dir)}")


def _keeps_best(spec: Any) -> bool:
    """Whether a checkpoint leaves its best epoch's file on disk: keep_last alone deletes
    every file but the newest, unless each save is an improvement (save_best_only)."""
    return spec.keep_best is not None or spec.keep_last is None or spec.save_best_only


def _row(run: OpenRun, epoch: int) -> dict[str, float]:
    """log.csv's values at a 1-based epoch: what Keras formatted the checkpoint's name with."""
    from cbrun.run.logs import LogError, read_log

    try:
        log = read_log(run.run_dir / LOG_FILE)
    except LogError:
        return {}
    if epoch not in log.epochs:
        return {}
    index = log.epochs.index(epoch)
    return {name: values[index] for name, values in log.values.items()}


def _checkpoint_file(run_dir: Path, template: str, epoch: int,
                     row: dict[str, float]) -> Path | None:
    """The file a ModelCheckpoint template named at `epoch`, or None. The name is formatted
    from the epoch's logged values, as Keras formatted it; failing that, metric
    placeholders are matched by pattern (a rounding edge is no reason to miss the file),
    which tells the epoch's file apart only when the name holds the epoch."""
    try:
        exact = run_dir / template.format(**{**row, "epoch": epoch})
    except (KeyError, ValueError, TypeError, IndexError):
        exact = None
    if exact is not None and exact.is_file():
        return exact
    matches = sorted(run_dir.glob(_pattern(template, epoch)))
    if not matches or ("{epoch" not in template and len(matches) > 1):
        return None
    return matches[-1]  # without {epoch}, save_best_only keeps overwriting one file


def _pattern(template: str, epoch: int | None) -> str:
    """A glob of the files `template` names at `epoch` (None: at any epoch)."""
    parts = re.split(r"(\{[^}]*\})", template)
    return "".join(_fill(part, epoch) for part in parts)


def _fill(part: str, epoch: int | None) -> str:
    if not part.startswith("{"):
        return re.sub(r"([\[\]*?])", r"[\1]", part)  # literal in a glob
    name, _, spec = part[1:-1].partition(":")
    return format(epoch, spec) if name == "epoch" and epoch is not None else "*"


def _pruned(run: OpenRun, given: str) -> None:
    """A UsageError when `given` is a name the run's ModelCheckpoint wrote and then deleted
    (keep_best / keep_last), saying which of its files are there instead."""
    inside = Path(given)
    if inside.is_absolute() and run.run_dir.resolve() in inside.parents:
        inside = inside.relative_to(run.run_dir.resolve())
    for spec in run.config.callbacks:
        if spec.type != "ModelCheckpoint" or not spec.retains:
            continue
        pattern = _pattern(spec.filepath, None)
        if not fnmatch.fnmatchcase(inside.as_posix(), pattern):
            continue
        kept = sorted(p.relative_to(run.run_dir).as_posix()
                      for p in run.run_dir.glob(pattern) if p.is_file())
        raise UsageError(
            f"--checkpoint {given!r} is not in {run.run_dir}: its ModelCheckpoint keeps only "
            f"some of its files ({spec.retention_text()}) and deleted the others; it holds "
            f"{', '.join(kept) if kept else 'none now'}, or give --checkpoint best or last")


def _file(run: OpenRun, given: str) -> Checkpoint:
    inside = run.run_dir / given
    path = inside if inside.exists() else Path(given)
    if not path.exists():
        _pruned(run, given)
        raise UsageError(f"--checkpoint {given!r} is neither last, best, nor a file in "
                         f"{run.run_dir} or the current folder")
    if path.is_dir():
        if all((path / name).is_file() for name in STATE_FILES):
            try:
                data = read_state(path)
            except FileNotFoundError:
                raise UsageError(f"the saved state {path} was removed while it was read (a "
                                 "run still training keeps only its newest states); give "
                                 "--checkpoint last for the newest") from None
            except (OSError, ValueError) as exc:
                raise UsageError(f"the saved state {path} is damaged: {exc}") from None
            epoch = state_epoch(path) if path.name.startswith("epoch-") else None
            if epoch is not None and state_position(path)[1]:
                label = (f"the saved state {path} ({state_position(path)[1]} batches into "
                         f"epoch {epoch + 1})")
                epoch = None  # its weights are no epoch's
            else:
                label = f"the saved state {path}"
            return Checkpoint("state", path, epoch, label, state=data)
        raise UsageError(f"--checkpoint {given!r} is a folder, not a .keras or .weights.h5 "
                         "file or a saved state (state/epoch-NNNNN)")
    if path.name.endswith(".weights.h5"):
        return Checkpoint("weights", path, None, f"weights {path}")
    if path.suffix == ".keras":
        return Checkpoint("model", path, None, f"model {path}")
    raise UsageError(f"--checkpoint {given!r} is not a .keras model or a .weights.h5 "
                     "weights file; give last, best or such a file")
