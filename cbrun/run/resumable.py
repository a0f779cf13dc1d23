"""Whether a run may continue, and with which changes, decided before TensorFlow loads (a
refused resume changes nothing). What a run's state holds, how it is written, read back and
put in place is cbrun/state/; the command is cbrun/commands/resume.py.

A run is resumable when it was interrupted (Ctrl-C, SIGTERM), failed (a crash), or says
`running` while the process it names is gone (kill -9, a lost machine). A run whose process
is alive, or that completed or stopped early, is not silently trained further.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cbrun.errors import RunError, UsageError, format_loc
from cbrun.run.record import RunRecord, StopReason

if TYPE_CHECKING:
    from cbrun.config.load import LoadedConfig
    from cbrun.config.root import RunConfig

def check_resumable(record: RunRecord, epochs: int | None, past_early_stop: bool) -> None:
    file = record.file
    done = file.epochs_done
    if epochs is not None and epochs <= done:
        raise UsageError(f"--epochs {epochs} is not past the {done} epochs already done; "
                         f"--epochs is the new total, e.g. --epochs {done + 10}")
    if file.stop_reason is StopReason.NAN_LOSS:
        raise UsageError(f"{record.run_dir} failed because the loss became NaN or inf; "
                         "resuming would continue from NaN weights. Fix the cause (a lower "
                         "learning rate, clean data) and train anew")
    status = file.status
    run = record.run_dir
    if status == "running":
        # The caller holds the run's lock, so no cbrun process here is working on it: the
        # process recorded was killed (or its machine lost). Another host's lock is not ours.
        if file.host and file.host != socket.gethostname():
            raise RunError(f"{run} says it is running on host {file.host!r}; resume it there, "
                           "or check that process is gone before copying the run here")
    elif status == "completed":
        if epochs is None:
            raise UsageError(f"{run} completed all {file.epochs_planned} epochs; to train it "
                             f"further give a larger total, e.g. --epochs "
                             f"{(file.epochs_planned or 0) + 10}")
    elif status == "stopped_early":
        if not past_early_stop:
            reason = file.stop_note or f"stopped early at epoch {file.stopped_early_at}"
            raise UsageError(
                f"{run} ended early ({reason}); resuming would undo that decision. To train "
                "on anyway pass --continue-after-early-stop (and --epochs N to raise the total)")
    elif status == "pruned":
        raise UsageError(f"{run} was pruned by its sweep ({file.stop_note}); the "
                         "sweep decided it was not worth training further")
    elif status not in ("interrupted", "failed"):
        raise RunError(f"{run}/run.json has status {status!r}, which cannot be resumed")


def flatten(data: Any, prefix: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], Any]:
    if isinstance(data, dict):
        out: dict[tuple[Any, ...], Any] = {}
        for key, value in data.items():
            out.update(flatten(value, prefix + (key,)))
        return out
    if isinstance(data, list) and data and all(isinstance(v, dict) for v in data):
        out = {}
        for index, value in enumerate(data):
            out.update(flatten(value, prefix + (index,)))
        return out
    return {prefix: data}


FROZEN_ON_RESUME = {
    ("model",): "the saved weights belong to these layers and this input shape",
    ("name",): "the run id is made from it",
    ("seed",): "the saved random states came from it",
    ("compile", "mixed_precision"): "the saved optimizer state and numbers came from it",
}
OPTIMIZER_FROZEN = "the saved optimizer state belongs to this optimizer (its other "\
    "parameters, learning_rate included, can change)"


def override_changes(before: RunConfig, after: RunConfig,
                     epochs_done: int) -> list[tuple[str, Any, Any]]:
    """(dotted path, old, new) for every value --set changed. Refuses what cannot apply to
    the saved state, before anything is written: a refused resume changes nothing."""
    def refuse(what: str, why: str) -> UsageError:
        return UsageError(f"--set cannot change {what} on resume: {why}")

    if before.optimizer_settings()[0] != after.optimizer_settings()[0]:
        raise refuse("compile.optimizer.type", OPTIMIZER_FROZEN)
    if [cb.type for cb in before.callbacks] != [cb.type for cb in after.callbacks]:
        raise refuse("the callbacks' number, types or order",
                     "each saved callback state belongs to one callback; parameters of the "
                     "existing callbacks can change")
    if before.writes_run_log() != after.writes_run_log():
        raise refuse("which CSVLogger writes log.csv",
                     "cbrun adds its own log.csv writer when none does, so the saved "
                     "callback states would no longer line up")
    if after.fit.epochs < epochs_done:
        raise refuse("fit.epochs", f"{epochs_done} epochs are already done")

    old, new = (flatten(c.model_dump(mode="json", by_alias=True)) for c in (before, after))
    changes = []
    for loc in sorted(set(old) | set(new), key=str):
        if old.get(loc) != new.get(loc):
            for frozen, why in FROZEN_ON_RESUME.items():
                if loc[:len(frozen)] == frozen:
                    raise refuse(format_loc(loc), why)
            changes.append((format_loc(loc), old.get(loc), new.get(loc)))
    return changes


def changed_learning_rate(before: RunConfig, after: RunConfig) -> float | None:
    """A learning rate set with --set; the saved optimizer state holds the old one, so the
    new one is put in place after restoring."""
    old, new = (c.optimizer_settings()[1].get("learning_rate") for c in (before, after))
    return new if new != old else None


@dataclass
class ResumePlan:
    """What a resume will train with: the config (--set and --epochs applied), the values
    they changed, a learning rate to put in place after restoring, and the loaded file
    (its positions place config errors)."""

    config: RunConfig
    changes: list[tuple[str, Any, Any]]
    learning_rate: float | None
    loaded: LoadedConfig


def plan_resume(record: RunRecord, epochs: int | None,
                overrides: tuple[str, ...]) -> ResumePlan:
    """Reads the run's resolved.yaml, applies the changes asked for, refuses what cannot
    apply to the saved state. Writes nothing."""
    from cbrun.config.load import load_config

    resolved = record.run_dir / "resolved.yaml"
    before = load_config(resolved, resolved=True)
    _check_matches_record(record, before.config, resolved)
    loaded = load_config(resolved, overrides, resolved=True) if overrides else before
    config = loaded.config
    if epochs is not None:
        if config is before.config:  # no --set: keep `before` as it was for the comparison
            config = config.model_copy(deep=True)
        config.fit.epochs = epochs
    changes = override_changes(before.config, config, record.epochs_done)
    _check_same_data(record, config, {path for path, _, _ in changes})
    return ResumePlan(config, changes, changed_learning_rate(before.config, config), loaded)


def _check_same_data(record: RunRecord, config: RunConfig, changed_keys: set[str]) -> None:
    """The data files must be those the run started on, unless --set points elsewhere."""
    from cbrun.data.fingerprint import changed

    before = {field: print_ for field, print_ in (record.file.data_files or {}).items()
              if f"data.{field}" not in changed_keys}
    if not before or record.file.config_dir is None:
        return
    differs = changed(before, config.data, Path(record.file.config_dir), record.run_dir)
    if differs:
        raise UsageError(
            f"{record.run_dir}: the data changed since the run started ({'; '.join(differs)}); "
            "resuming would train the remaining epochs on other data than the first ones. "
            "Put the original back, or start a new run with cbrun train")


def _check_matches_record(record: RunRecord, config: RunConfig, resolved: Path) -> None:
    """resolved.yaml edited by hand is held to the rules --set follows: what the run id
    and the saved random states came from cannot change."""
    for field in ("seed", "name"):
        was = getattr(record.file, field)
        now = getattr(config, field)
        if was is not None and was != now:
            raise UsageError(f"{resolved} has {field}: {now!r}, but the run was trained with "
                             f"{field} {was!r} (run.json); {FROZEN_ON_RESUME[(field,)]}, so "
                             f"it cannot change on resume; put back {field}: {was!r}")

