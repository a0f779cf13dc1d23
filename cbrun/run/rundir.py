"""Run directories: creation, the files that describe a run, the run lock. (run.json is
cbrun/run/record.py's.)

    runs/<id>/config.yaml    the file as given, byte for byte
              resolved.yaml  the validated config with every default filled in
              run.json       status, times, versions, seed, command, epochs done, best value
"""

from __future__ import annotations

import fcntl
import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from cbrun import __version__
from cbrun.errors import RunError, UsageError
from cbrun.run.runguard import check_tree, open_new

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
    # No-follow: a link planted under the temporary name must not take the bytes elsewhere;
    # the rename then replaces a link at `path` itself, never its target.
    try:
        with os.fdopen(open_new(tmp), "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk leaves the old file and no debris
        raise


def create_run_dir(root: Path, name: str, now: datetime | None = None) -> Path:
    """runs/<UTC yyyymmdd-HHMMSS>-<name>; a second run in the same second gets -2, -3, ..."""
    stamp = (now or utc_now()).strftime("%Y%m%d-%H%M%S")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UsageError(f"--runs-dir {root} is a file, not a folder for run directories"
                         ) from None
    except OSError as exc:  # no permission, a read-only filesystem, /proc, ...
        raise UsageError(f"cannot create run directories under {root}: "
                         f"{exc.strerror or exc}") from None
    base = f"{stamp}-{name}"
    for attempt in range(1, 10_000):
        candidate = root / (base if attempt == 1 else f"{base}-{attempt}")
        try:
            candidate.mkdir()  # atomic: two processes can never both create the same folder
        except FileExistsError:
            continue
        except OSError as exc:
            raise UsageError(f"cannot create a run directory under {root}: "
                             f"{exc.strerror or exc}") from None
        return candidate
    raise RunError(f"could not create a run directory under {root}")


def write_config_files(run_dir: Path, original_text: bytes, resolved: dict[str, Any],
                       files: list[str] | None = None) -> None:
    """config.yaml as given (a composed config's files merged) and resolved.yaml; `files`:
    the files a composed config was made of, named in resolved.yaml's header."""
    atomic_write_bytes(run_dir / "config.yaml", original_text)
    made_of = "".join(f"#   {name}\n" for name in files or ())
    atomic_write_bytes(run_dir / "resolved.yaml", (
        "# The validated config with every default filled in: what really ran.\n"
        + ("# Composed from these files, merged in order:\n" + made_of if made_of else "")
        + yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True)).encode("utf-8"))


def versions(backend: str = "tensorflow") -> dict[str, str]:
    """Versions of what ran; read from package metadata so TensorFlow need not be imported.
    A run on JAX says so, with JAX's version (TensorFlow still reads its data)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "cbrun": __version__}
    if backend != "tensorflow":
        out["backend"] = backend
    for package in ("tensorflow", "keras", *(["jax"] if backend == "jax" else [])):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run's lock while a command works on it; the kernel drops it even on kill -9.

    Two `cbrun resume` of one run would both append rows and events; a recorded pid cannot
    stop that (it is written only once training starts, and pids are reused)."""
    check_tree(run_dir)  # before the first write of this command: the lock file
    fd = open_new(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT)
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
