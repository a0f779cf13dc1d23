"""Deciding whether and from where a run can continue (lower floor: no TensorFlow).

A run is resumable when it was interrupted (Ctrl-C, SIGTERM), failed (a crash), or says
`running` while the process it names is gone (kill -9, a lost machine). A run whose process
is alive, or that completed or stopped early, is not silently trained further.
"""

from __future__ import annotations

import csv
import os
import socket
from pathlib import Path
from typing import Any

from cbrun.errors import RunError, UsageError
from cbrun.rundir import RunRecord, atomic_write_bytes


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def check_resumable(record: RunRecord, epochs: int | None, past_early_stop: bool) -> None:
    data = record.data
    status = data.get("status")
    run = record.run_dir
    if status == "running":
        pid, host = data.get("pid"), data.get("host")
        if host and host != socket.gethostname():
            raise RunError(f"{run} says it is running on host {host!r}; resume it there, or "
                           "check that process is gone before copying the run here")
        if isinstance(pid, int) and process_alive(pid):
            raise RunError(f"{run} is still running (pid {pid}); stop it first "
                           f"(Ctrl-C, or kill {pid}) and then resume")
    elif status == "completed":
        planned = data.get("epochs_planned")
        if epochs is None or epochs <= data.get("epochs_done", 0):
            raise UsageError(f"{run} completed all {planned} epochs; to train it further "
                             f"give a larger total, e.g. --epochs {(planned or 0) + 10}")
    elif status == "stopped_early":
        if not past_early_stop:
            raise UsageError(
                f"{run} was stopped by EarlyStopping at epoch {data.get('stopped_early_at')}; "
                "resuming would undo that decision. To train on anyway pass "
                "--continue-after-early-stop (and --epochs N to raise the total)")
    elif status not in ("interrupted", "failed"):
        raise RunError(f"{run}/run.json has an unknown status {status!r}")


def truncate_csv(path: Path, epochs_done: int) -> int:
    """Keep the header and the rows of epochs before `epochs_done` (0-based epoch column);
    returns how many rows were dropped. Rows past the saved state are rewritten on resume."""
    if not path.exists():
        return 0
    text = path.read_text()
    lines = text.splitlines(keepends=True)
    if not lines:
        return 0
    try:
        dialect = csv.Sniffer().sniff(lines[0], delimiters=",;\t|")
        separator = dialect.delimiter
    except csv.Error:
        separator = ","
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
        kept.append(line if line.endswith("\n") else line + "\n")
    dropped = len(lines) - len(kept)
    if dropped:
        atomic_write_bytes(path, "".join(kept).encode())
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
    "model": "the saved weights belong to these layers and this input shape",
    "name": "the run id is made from it",
    "seed": "the saved random states came from it",
}


def override_changes(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(dotted path, old, new) for every value --set changed; refuses frozen ones."""
    from cbrun.errors import format_loc

    old, new = flatten(before), flatten(after)
    changes = []
    for loc in sorted(set(old) | set(new), key=str):
        if old.get(loc) != new.get(loc):
            if loc and loc[0] in FROZEN_ON_RESUME:
                raise UsageError(f"--set cannot change {format_loc(loc)} on resume: "
                                 f"{FROZEN_ON_RESUME[loc[0]]}")
            changes.append((format_loc(loc), old.get(loc), new.get(loc)))
    return changes
