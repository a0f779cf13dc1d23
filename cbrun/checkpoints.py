"""Which file of a finished (or interrupted) run holds its model at a checkpoint, decided
without TensorFlow: `cbrun evaluate`, `predict`, `export` and `cbrun.load_run` ask here,
then `cbrun/train/runmodel.py` loads what this names.

    last  the weights the run ended with: runs/<id>/model.keras when the run ended (with
          EarlyStopping's restore_best_weights these are its best epoch's weights, which
          the test split was evaluated with); for a run that did not end (interrupted,
          crashed, killed, still running) the newest valid saved state, whose model
          variables are the last completed epoch's
    best  the ModelCheckpoint file of the best monitored epoch: the checkpoint callback's
          monitor and mode applied to log.csv, as Keras applied them to the logs
    FILE  a .keras or .weights.h5 file (relative to the run directory, else to the current
          folder), or a saved state folder (state/epoch-00004)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cbrun.errors import UsageError
from cbrun.record import RunRecord, StopReason
from cbrun.resume import STATE_FILES, state_epoch, state_problem, valid_state_dirs
from cbrun.rundir import LOG_FILE

MODEL_FILE = "model.keras"
RESOLVED = "resolved.yaml"
# Runs whose process wrote model.keras as its last act (segment.py: the session saves it
# before the outcome is recorded).
_ENDED = ("completed", "stopped_early", "pruned")


@dataclass
class TrainedRun:
    """A run directory opened for use after training: its record, its resolved config,
    and where its data paths start."""

    run_dir: Path
    record: RunRecord
    config: Any  # RunConfig
    config_dir: Path


@dataclass(frozen=True)
class Checkpoint:
    """What to load: a whole model (.keras), weights for the config's model (.weights.h5),
    or a saved state's model variables. `epoch`: the 1-based epoch whose weights these are,
    when known."""

    kind: Literal["model", "weights", "state"]
    path: Path
    epoch: int | None
    label: str  # for the user: "best: epoch 6 (val_loss 0.0912)"


def open_run(run_dir: Path) -> TrainedRun:
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
    return TrainedRun(run_dir, record, config, Path(record.file.config_dir or run_dir))


def choose_checkpoint(run: TrainedRun, which: str) -> Checkpoint:
    """`last`, `best` or a file, as the module docstring describes."""
    if which == "last":
        return _last(run)
    if which == "best":
        return _best(run)
    return _file(run, which)


def _last(run: TrainedRun) -> Checkpoint:
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
    states = valid_state_dirs(run.run_dir)
    if not states:
        raise UsageError(f"{run.run_dir} has not ended ({file.status}) and holds no valid "
                         "saved state yet: there are no trained weights to load")
    epoch = state_epoch(states[0])
    return Checkpoint("state", states[0], epoch,
                      f"last: the saved state after epoch {epoch} (the run is "
                      f"{file.status}; {MODEL_FILE} is written when it ends)")


def _restored_epoch(run: TrainedRun) -> int | None:
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


def _column(run: TrainedRun, name: str) -> list[tuple[int, float]]:
    """(1-based epoch, value) of a log.csv column, epochs without a value left out."""
    from cbrun.logs import LogError, read_log

    try:
        log = read_log(run.run_dir / LOG_FILE)
    except LogError:
        return []
    values = log.values.get(name, ())
    return [(e, v) for e, v in zip(log.epochs, values, strict=False) if not math.isnan(v)]


def _best(run: TrainedRun) -> Checkpoint:
    from cbrun.config.monitors import monitor_mode

    specs = [s for s in run.config.callbacks if s.type == "ModelCheckpoint"
             and s.save_freq == "epoch"]
    # A save_best_only checkpoint's last file is its best; one written every epoch under
    # its own {epoch} name holds the best epoch too.
    usable = ([s for s in specs if s.save_best_only]
              + [s for s in specs if not s.save_best_only and "{epoch" in s.filepath])
    if not usable:
        raise UsageError(f"{run.run_dir} kept no checkpoint of its best epoch: its config has "
                         "no ModelCheckpoint with save_best_only: true (or one that saves "
                         "every epoch with {epoch} in its filepath); use --checkpoint last "
                         "or a checkpoint FILE")
    primary = run.record.file.monitor
    spec = next((s for s in usable if primary and s.monitor == primary.name), usable[0])
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
    path = _checkpoint_file(run.run_dir, spec.filepath, epoch)
    kind = "weights" if spec.save_weights_only else "model"
    return Checkpoint(kind, path, epoch,
                      f"best: epoch {epoch} ({spec.monitor} {value:.6g}), "
                      f"{path.relative_to(run.run_dir)}")


def _checkpoint_file(run_dir: Path, template: str, epoch: int) -> Path:
    """The file a ModelCheckpoint template named at `epoch`. Metric placeholders are matched
    by pattern: log.csv holds the values Keras formatted, but a rounding edge is no reason
    to miss the file."""
    parts = re.split(r"(\{[^}]*\})", template)
    pattern = "".join(_fill(part, epoch) for part in parts)
    matches = sorted(run_dir.glob(pattern))
    if not matches:
        raise UsageError(f"the best checkpoint of {run_dir} (epoch {epoch}) should be "
                         f"{pattern}, but no such file is there; was it deleted?")
    return matches[-1]  # without {epoch}, save_best_only keeps overwriting one file


def _fill(part: str, epoch: int) -> str:
    if not part.startswith("{"):
        return re.sub(r"([\[\]*?])", r"[\1]", part)  # literal in a glob
    name, _, spec = part[1:-1].partition(":")
    return format(epoch, spec) if name == "epoch" else "*"


def _file(run: TrainedRun, given: str) -> Checkpoint:
    inside = run.run_dir / given
    path = inside if inside.exists() else Path(given)
    if not path.exists():
        raise UsageError(f"--checkpoint {given!r} is neither last, best, nor a file in "
                         f"{run.run_dir} or the current folder")
    if path.is_dir():
        if all((path / name).is_file() for name in STATE_FILES):
            problem = state_problem(path)
            if problem:
                raise UsageError(f"the saved state {path} is damaged: {problem}")
            epoch = state_epoch(path) if path.name.startswith("epoch-") else None
            return Checkpoint("state", path, epoch, f"the saved state {path}")
        raise UsageError(f"--checkpoint {given!r} is a folder, not a .keras or .weights.h5 "
                         "file or a saved state (state/epoch-NNNNN)")
    if path.name.endswith(".weights.h5"):
        return Checkpoint("weights", path, None, f"weights {path}")
    if path.suffix == ".keras":
        return Checkpoint("model", path, None, f"model {path}")
    raise UsageError(f"--checkpoint {given!r} is not a .keras model or a .weights.h5 "
                     "weights file; give last, best or such a file")
