"""Deciding whether and from where a run can continue (lower floor: no TensorFlow).

A run is resumable when it was interrupted (Ctrl-C, SIGTERM), failed (a crash), or says
`running` while the process it names is gone (kill -9, a lost machine). A run whose process
is alive, or that completed or stopped early, is not silently trained further.
"""

from __future__ import annotations

import csv
import json
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cbrun.errors import RunError, UsageError, format_loc
from cbrun.logs import sniff_delimiter
from cbrun.rundir import STATE_DIR, RunRecord, atomic_write_bytes

if TYPE_CHECKING:
    from cbrun.config.root import RunConfig

STATE_FILES = ("variables.npz", "arrays.npz", "state.json")


def state_dirs(run_dir: Path) -> list[Path]:
    """The run's saved states, newest first; only whole ones (renamed into place, all files)."""
    root = run_dir / STATE_DIR
    if not root.is_dir():
        return []
    found = [p for p in root.glob("epoch-*") if p.is_dir()
             and all((p / name).is_file() for name in STATE_FILES)]
    return sorted(found, reverse=True)


def newest_state_epoch(run_dir: Path) -> int:
    dirs = state_dirs(run_dir)
    return int(dirs[0].name.removeprefix("epoch-")) if dirs else 0


def newest_state_best(run_dir: Path) -> dict[str, Any] | None:
    """The run's best value as of its newest state (what resume will start from)."""
    for path in state_dirs(run_dir):
        try:
            return json.loads((path / "state.json").read_text()).get("best")
        except (OSError, ValueError):
            continue
    return None


def check_resumable(record: RunRecord, epochs: int | None, past_early_stop: bool) -> None:
    data = record.data
    done = data.get("epochs_done", 0)
    if epochs is not None and epochs <= done:
        raise UsageError(f"--epochs {epochs} is not past the {done} epochs already done; "
                         f"--epochs is the new total, e.g. --epochs {done + 10}")
    if data.get("stop_reason") == "loss became NaN or inf":
        raise UsageError(f"{record.run_dir} failed because the loss became NaN or inf; "
                         "resuming would continue from NaN weights. Fix the cause (a lower "
                         "learning rate, clean data) and train anew")
    status = data.get("status")
    run = record.run_dir
    if status == "running":
        # The caller holds the run's lock, so no cbrun process here is working on it: the
        # process recorded was killed (or its machine lost). Another host's lock is not ours.
        host = data.get("host")
        if host and host != socket.gethostname():
            raise RunError(f"{run} says it is running on host {host!r}; resume it there, or "
                           "check that process is gone before copying the run here")
    elif status == "completed":
        planned = data.get("epochs_planned")
        if epochs is None or epochs <= data.get("epochs_done", 0):
            raise UsageError(f"{run} completed all {planned} epochs; to train it further "
                             f"give a larger total, e.g. --epochs {(planned or 0) + 10}")
    elif status == "stopped_early":
        if not past_early_stop:
            reason = data.get("stop_reason") or f"stopped early at epoch {data.get('stopped_early_at')}"
            raise UsageError(
                f"{run} ended early ({reason}); resuming would undo that decision. To train "
                "on anyway pass --continue-after-early-stop (and --epochs N to raise the total)")
    elif status not in ("interrupted", "failed"):
        raise RunError(f"{run}/run.json has an unknown status {status!r}")


def truncate_csv(path: Path, epochs_done: int) -> int:
    """Keep the header and the rows of epochs before `epochs_done` (0-based epoch column);
    returns how many rows were dropped. Rows past the saved state are rewritten on resume."""
    if not path.exists():
        return 0
    # Bytes as they are (surrogateescape round-trips anything): Keras ends rows with \r\n,
    # and the rows kept must stay byte-identical.
    text = path.read_bytes().decode("utf-8", errors="surrogateescape")
    lines = text.splitlines(keepends=True)
    if not lines:
        return 0
    separator = sniff_delimiter(lines[0])
    header = next(csv.reader([lines[0]], delimiter=separator))
    if "epoch" not in header:
        return 0
    column = header.index("epoch")
    kept = [lines[0]]
    for line in lines[1:]:
        cells = next(csv.reader([line], delimiter=separator), [])
        try:
            epoch = int(float(cells[column]))
        except (IndexError, ValueError):
            break  # a half-written last row
        if epoch >= epochs_done:
            break
        kept.append(line if line.endswith("\n") else line + "\r\n")
    dropped = len(lines) - len(kept)
    if dropped:
        atomic_write_bytes(path, "".join(kept).encode("utf-8", errors="surrogateescape"))
    return dropped


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
