"""A run's saved states on disk: their names, their files and checksums, how one is written
(atomically) and pruned, and which one a resume may read. No TensorFlow: `cbrun resume`
decides from these before the import, and the writer thread writes with them.

    state/epoch-00006/variables.npz  every model variable (the seed generators of Dropout
                                     and friends included) and every optimizer variable
                      arrays.npz     arrays held by callbacks (EarlyStopping's best weights)
                      state.json     epoch, callback states, Python/NumPy/Keras random
                                     states, the run's best value so far
                      checksums.json the SHA-256 of the three files above, written last

A state is written into a temporary folder and renamed into place, so a kill at any instant
leaves the previous state whole; a write that fails (a full disk) leaves no temporary folder.
Resume uses the newest state whose bytes match their checksums and read back in full; a
damaged one is skipped for the spare, and with none left the run starts again from epoch 1.
Pruning keeps the newest states this run wrote: a state past the epoch just saved belongs to
a future the run no longer follows (a damaged state a restart went around) and goes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cbrun.run.rundir import STATE_DIR
from cbrun.run.runguard import check_inside

KEEP = 2  # the newest state plus one spare
FORMAT = 1
# Fault injection for the tests that kill or signal a run in the middle of a state write.
FAULT_ENV = "CBRUN_FAULT_KILL_IN_STATE_WRITE"
# And right after a batch: "EPOCH:BATCH[:SIGNAL]", 0-based (engine/callbacks/keeper.py).
FAULT_AT_BATCH_ENV = "CBRUN_FAULT_KILL_AT_BATCH"
# And only in this process of a job of several (its CBRUN_PROCESS_ID).
FAULT_PROCESS_ENV = "CBRUN_FAULT_PROCESS"
STATE_FILES = ("variables.npz", "arrays.npz", "state.json")
# Written last into a state: the SHA-256 of each of STATE_FILES as written. A state whose
# bytes changed since (a flipped bit inside an intact zip archive, an edit) is not used.
CHECKSUMS = "checksums.json"


def state_name(epochs_done: int, batches: int = 0) -> str:
    """`epoch-00006` at an epoch's end; `epoch-00006-0000123` 123 batches into epoch 7."""
    return f"epoch-{epochs_done:05d}" + (f"-{batches:07d}" if batches else "")


def state_position(path: Path) -> tuple[int, int]:
    """(epochs done, batches into the next epoch) of a state folder's name."""
    epochs, _, batches = path.name.removeprefix("epoch-").partition("-")
    return int(epochs), int(batches or 0)


def state_epoch(path: Path) -> int:
    return state_position(path)[0]


def state_dirs(run_dir: Path) -> list[Path]:
    """The run's saved states, newest first; only whole ones (renamed into place, all files)."""
    root = run_dir / STATE_DIR
    if not root.is_dir():
        return []
    found = [p for p in root.glob("epoch-*") if p.is_dir()
             and all((p / name).is_file() for name in STATE_FILES)]
    return sorted(found, key=state_position, reverse=True)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def state_problem(path: Path) -> str | None:
    """What is wrong with the bytes of a saved state, or None when every file is as written.
    A state from before checksums were recorded has none to compare; the upper floor reads it
    in full instead (latest_state, below)."""
    sums_path = path / CHECKSUMS
    if not sums_path.exists():
        return None
    try:
        sums = json.loads(sums_path.read_bytes())
        if not isinstance(sums, dict) or set(sums) != set(STATE_FILES):
            return f"{CHECKSUMS} does not list {', '.join(STATE_FILES)}"
        for name in STATE_FILES:
            if file_sha256(path / name) != sums[name]:
                return f"{name} does not match the checksum recorded when it was written"
    except (OSError, ValueError) as exc:
        return f"{CHECKSUMS} cannot be read ({exc})"
    return None


def valid_state_dirs(run_dir: Path) -> list[Path]:
    """The saved states whose bytes are as written, newest first."""
    return [p for p in state_dirs(run_dir) if state_problem(p) is None]


def newest_state_epoch(run_dir: Path) -> int:
    """The epoch resume would start after: the newest state that is whole and as written."""
    dirs = valid_state_dirs(run_dir)
    return state_epoch(dirs[0]) if dirs else 0


def newest_state_position(run_dir: Path) -> tuple[int, int]:
    """(epochs done, batches into the next epoch) of the state a resume would start from."""
    dirs = valid_state_dirs(run_dir)
    return state_position(dirs[0]) if dirs else (0, 0)


def newest_state_best(run_dir: Path) -> dict[str, Any] | None:
    """The run's best value as of its newest valid state (what resume will start from)."""
    for path in valid_state_dirs(run_dir):
        try:
            return json.loads((path / "state.json").read_text()).get("best")
        except (OSError, ValueError):
            continue
    return None


@dataclass
class SavedState:
    path: Path
    meta: dict[str, Any]

    @property
    def epochs_done(self) -> int:
        return int(self.meta["epochs_done"])

    @property
    def batches_done(self) -> int:
        """Batches of the next epoch already trained: 0 for a state at an epoch's end."""
        return int(self.meta.get("batches_done", 0))


@dataclass
class CapturedState:
    """A state as read on the training thread: copies, so it can be written elsewhere while
    training moves on (cbrun/state/writer.py)."""

    epochs_done: int
    variables: dict[str, np.ndarray]
    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]
    batches_done: int = 0

    @property
    def position(self) -> tuple[int, int]:
        return self.epochs_done, self.batches_done


def _fsync_write(path: Path, write) -> None:
    with open(path, "wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())


def write_state(run_dir: Path, state: CapturedState) -> Path:
    """Written into a temporary folder, then renamed into place: a kill at any instant
    leaves the previous state whole."""
    root = run_dir / STATE_DIR
    check_inside(run_dir, root, "the state folder")  # a link planted while training
    root.mkdir(exist_ok=True)
    final = root / state_name(*state.position)
    tmp = root / f".tmp-{final.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        _write_state(tmp, state)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a full disk leaves nothing half-written
        raise
    if final.exists():  # left by a run that was resumed from an earlier epoch
        shutil.rmtree(final)
    os.rename(tmp, final)
    _prune(root, state.position)
    return final


def _write_state(tmp: Path, state: CapturedState) -> None:
    _fsync_write(tmp / "variables.npz", lambda h: np.savez(h, **state.variables))
    fault_epoch, _, fault_signal = os.environ.get(FAULT_ENV, "").partition(":")
    if fault_epoch == str(state.epochs_done):  # "5" or "5:SIGTERM"
        os.kill(os.getpid(), getattr(signal, fault_signal or "SIGKILL"))
    _fsync_write(tmp / "arrays.npz", lambda h: np.savez(h, **state.arrays))
    _fsync_write(tmp / "state.json", lambda h: h.write(
        json.dumps(state.meta, indent=1, allow_nan=True).encode()))
    # Read back from disk, so the checksums are of the bytes the disk holds.
    sums = {name: file_sha256(tmp / name) for name in STATE_FILES}
    _fsync_write(tmp / CHECKSUMS, lambda h: h.write(json.dumps(sums, indent=1).encode()))


def _prune(root: Path, position: tuple[int, int]) -> None:
    """Keep the KEEP newest states up to `position` and the newest state at an epoch's end
    (what `--checkpoint last` reads of a run that did not end); a state past `position`
    belongs to a future the run no longer follows (see the module docstring)."""
    states = sorted((p for p in root.glob("epoch-*") if p.is_dir()), key=state_position)
    for path in states:
        if state_position(path) > position:
            shutil.rmtree(path, ignore_errors=True)
    kept = [p for p in states if state_position(p) <= position]
    ends = [p for p in kept if state_position(p)[1] == 0]
    for old in kept[:-KEEP]:
        if not ends or old != ends[-1]:
            shutil.rmtree(old, ignore_errors=True)
    for tmp in root.glob(".tmp-*"):
        if not tmp.name.endswith(f"-{os.getpid()}"):
            shutil.rmtree(tmp, ignore_errors=True)  # debris of a process killed mid-write


def _to_json(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_to_json(v) for v in value]
    return value


def latest_state(run_dir: Path, warn=print) -> SavedState | None:
    """The newest state whose bytes match their checksums and that reads back in full; a
    damaged one is skipped, with a warning."""
    for path in state_dirs(run_dir):
        try:
            problem = state_problem(path)
            if problem is not None:
                raise ValueError(problem)
            meta = json.loads((path / "state.json").read_text())
            if meta.get("format") != FORMAT:
                raise ValueError(f"format {meta.get('format')!r}, this cbrun reads {FORMAT}")
            # Every array read in full: zip checks each member's CRC as it reads it, which
            # covers a state saved before checksums were recorded.
            with np.load(path / "variables.npz") as data:
                wanted = ([f"m{i}" for i in range(len(meta["model_shapes"]))]
                          + [f"o{i}" for i in range(len(meta["optimizer_shapes"]))]
                          + [f"s{i}" for i in range(len(meta.get("metric_shapes", [])))])
                if sorted(data.files) != sorted(wanted):
                    raise ValueError("variables.npz does not hold every variable")
                for name in wanted:
                    data[name]
            with np.load(path / "arrays.npz") as data:
                for name in data.files:
                    data[name]
        except (OSError, ValueError, KeyError, TypeError, EOFError, SyntaxError, zlib.error,
                zipfile.BadZipFile) as exc:
            warn(f"warning: saved state {path} is damaged ({exc}); trying the one before it")
            continue
        return SavedState(path, meta)
    return None


