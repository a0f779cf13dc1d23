"""Run directories: creation, the files that describe a run, and run.json updates.

    runs/<id>/config.yaml    the file as given, byte for byte
              resolved.yaml  the validated config with every default filled in
              run.json       status, times, versions, seed, command, epochs done, best value
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from cbrun import __version__
from cbrun.errors import RunError, UsageError

# The names inside a run directory, in one place.
RUN_FILE = "run.json"
LOG_FILE = "log.csv"
STATE_DIR = "state"
LOCK_FILE = ".lock"


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary name, flush to disk, rename: a kill at any instant leaves either
    the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def create_run_dir(root: Path, name: str, now: datetime | None = None) -> Path:
    """runs/<UTC yyyymmdd-HHMMSS>-<name>; a second run in the same second gets -2, -3, ..."""
    stamp = (now or utc_now()).strftime("%Y%m%d-%H%M%S")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UsageError(f"--runs-dir {root} is a file, not a folder for run directories"
                         ) from None
    except PermissionError as exc:
        raise UsageError(f"cannot create run directories under {root}: {exc.strerror}"
                         ) from None
    base = f"{stamp}-{name}"
    for attempt in range(1, 10_000):
        candidate = root / (base if attempt == 1 else f"{base}-{attempt}")
        try:
            candidate.mkdir()  # atomic: two processes can never both create the same folder
        except FileExistsError:
            continue
        return candidate
    raise RunError(f"could not create a run directory under {root}")


def write_config_files(run_dir: Path, original_text: bytes, resolved: dict[str, Any]) -> None:
    (run_dir / "config.yaml").write_bytes(original_text)
    (run_dir / "resolved.yaml").write_text(
        "# The validated config with every default filled in: what really ran.\n"
        + yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True))


def versions() -> dict[str, str]:
    """Versions of what ran; read from package metadata so TensorFlow need not be imported."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "cbrun": __version__}
    for package in ("tensorflow", "keras"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out


class RunRecord:
    """run.json: read, changed, written atomically (other processes read it while we run)."""

    def __init__(self, run_dir: Path, data: dict[str, Any]):
        self.run_dir = run_dir
        self.data = data

    @property
    def path(self) -> Path:
        return self.run_dir / RUN_FILE

    @classmethod
    def new(cls, run_dir: Path, name: str, seed: int, epochs: int,
            monitor: tuple[str, str] | None, command: list[str]) -> RunRecord:
        now = iso(utc_now())
        data = {
            "id": run_dir.name,
            "name": name,
            "status": "running",
            "created": now,
            "finished": None,
            "duration_s": 0.0,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": command,
            "seed": seed,
            "epochs_planned": epochs,
            "epochs_done": 0,
            "monitor": {"name": monitor[0], "mode": monitor[1]} if monitor else None,
            "best": None,
            "stopped_early_at": None,
            "versions": versions(),
            "segments": [],
            "error": None,
        }
        record = cls(run_dir, data)
        record.save()
        return record

    @classmethod
    def load(cls, run_dir: Path) -> RunRecord:
        path = run_dir / RUN_FILE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise UsageError(f"{run_dir} is not a run directory (no run.json); give a "
                             "folder that `cbrun train` created, e.g. runs/<id>") from None
        except json.JSONDecodeError as exc:
            raise RunError(f"{path} is not valid JSON ({exc})") from None
        if not isinstance(data, dict) or not isinstance(data.get("segments"), list):
            raise RunError(f"{path} is not a run record cbrun wrote (no segments); was it "
                           "edited?")
        return cls(run_dir, data)

    def save(self) -> None:
        atomic_write_bytes(self.path, (json.dumps(self.data, indent=2) + "\n").encode())

    def begin_segment(self, kind: str, first_epoch: int, command: list[str]) -> None:
        for segment in self.data["segments"]:
            if segment["status"] == "running":  # its process died without a word (kill -9)
                segment["status"] = "killed"
        self.data["status"] = "running"
        self.data["pid"] = os.getpid()
        self.data["host"] = socket.gethostname()
        self.data["finished"] = None
        self.data["error"] = None
        self.data["segments"].append({
            "kind": kind, "started": iso(utc_now()), "finished": None, "pid": os.getpid(),
            "command": command, "first_epoch": first_epoch,
            "last_epoch": first_epoch - 1, "status": "running",
        })
        self.save()

    def epoch_done(self, epochs_done: int, best: dict[str, Any] | None) -> None:
        """Updates the record in memory; the caller saves it once the epoch's state is."""
        self.data["epochs_done"] = epochs_done
        self.data["best"] = best
        if self.data["segments"]:
            self.data["segments"][-1]["last_epoch"] = epochs_done

    def finish(self, status: str, error: str | None = None) -> None:
        now = utc_now()
        self.data["status"] = status
        self.data["finished"] = iso(now)
        self.data["error"] = error
        if self.data["segments"]:
            segment = self.data["segments"][-1]
            segment["finished"] = iso(now)
            segment["status"] = status
            started = datetime.fromisoformat(segment["started"])
            self.data["duration_s"] = round(
                self.data.get("duration_s", 0.0) + (now - started).total_seconds(), 3)
        self.save()


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run's lock while a command works on it; the kernel drops it even on kill -9.

    Two `cbrun resume` of one run would both append rows and events; a recorded pid cannot
    stop that (it is written only once training starts, and pids are reused)."""
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunError(f"{run_dir} is in use by another cbrun process (it holds "
                           f"{run_dir / LOCK_FILE}); wait for it or stop it first") from None
        yield
    finally:
        os.close(fd)  # closing releases the lock


def run_in_use(run_dir: Path) -> bool | None:
    """Whether a cbrun process holds the run's lock now; None when the run has no lock file."""
    try:
        fd = os.open(run_dir / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
