"""Where `-o` of `cbrun evaluate`, `predict` and `export` may write, decided before
TensorFlow loads: never over a file the user has without --force, never over or inside
what a run's cbrun or callbacks wrote (cbrun/run/runfiles.py), never through a link, and only
where a file can be made, tried by making one.

The writes themselves go to a temporary name beside the target and are renamed over it
when whole (`replace_with`), so a failure leaves what was there.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from cbrun.errors import RunError, UsageError
from cbrun.run.runfiles import owner


def check_run_files(path: Path, option: str = "-o") -> None:
    """Refuse a path that is, or lies inside, what a run wrote for itself."""
    found = owner(path)
    if found is not None:
        run_dir, what = found
        raise UsageError(f"{option} {path} is {what} in the run {run_dir}; cbrun never "
                         "writes over a run's own files: name a path outside them")


def check_writable(path: Path, option: str = "-o") -> None:
    """Refuse a target whose folder cannot be made or written in: its nearest existing
    folder is tried by creating (and removing) a file there."""
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        if os.path.islink(folder):  # a dangling link
            raise UsageError(f"{option} {path}: {folder} is a link to nowhere")
        folder = folder.parent
    if not folder.is_dir():
        raise UsageError(f"{option} {path}: {folder} is a file, not a folder")
    try:
        handle, probe = tempfile.mkstemp(prefix=".cbrun-probe-", dir=folder)
    except OSError as exc:
        raise UsageError(f"{option} {path}: cannot write in {folder} "
                         f"({exc.strerror or exc})") from None
    os.close(handle)
    os.unlink(probe)
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"{option} {path} exists and cannot be written (permission denied)")


def check_output_file(path: Path, force: bool, option: str = "-o") -> None:
    """A file output (predictions, a confusion matrix) that may be written as `path`."""
    if os.path.islink(path):
        raise UsageError(f"{option} {path} is a symbolic link (to {os.readlink(path)}); "
                         "cbrun does not write through links: name the real path")
    check_run_files(path, option)
    if path.is_dir():
        raise UsageError(f"{option} {path} is a folder; name a file")
    if path.exists() and not force:
        raise UsageError(f"{path} exists; add --force to replace it")
    check_writable(path, option)


def replace_with(path: Path, write: Callable[[Path], None]) -> None:
    """`write(temporary path)` beside `path`, then the rename over it: a failure leaves
    what `path` held. A failed write is a RunError naming `path`."""
    partial = path.with_name(f".{path.name}.partial{path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(partial)
        os.replace(partial, path)
    except OSError as exc:
        _remove(partial)
        raise RunError(f"could not write {path}: {exc.strerror or exc}") from None
    except BaseException:
        _remove(partial)
        raise


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)
