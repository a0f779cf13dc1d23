"""Every write of a run stays inside its run directory, whatever the directory holds.

cbrun and Keras's callbacks open files by name, and the kernel follows a symbolic link at
any point of a name: a link planted as `log.csv` or `checkpoints/` would send the writes to
its target; a hard link planted as `log.csv` shares the bytes of a file elsewhere. cbrun
itself never makes either, so one rule covers every file and every callback: before a
command works on a run, the run directory must hold no link of either kind (`check_tree`).
A link planted while a run trains is found before the next write: the tree is checked
again at every epoch's and validation's start and end, first of all callbacks (RunGuard,
cbrun/engine/callbacks/own.py), and before model.keras is saved. Names formatted while training
(ModelCheckpoint's `{epoch}`) are checked again where they are written (`check_inside`),
and cbrun's own writes open with O_NOFOLLOW (`open_new`).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cbrun.errors import RunError


def _inside(real: str, root: str) -> bool:
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def check_inside(run_dir: Path, path: str | os.PathLike, what: str) -> str:
    """`path` as it will be written; RunError when it, or a link on its way, leads out of
    the run directory."""
    root = os.path.realpath(run_dir)
    real = os.path.realpath(os.path.join(run_dir, path))
    if not _inside(real, root):
        raise RunError(f"{what} {os.fspath(path)!r} leads outside the run directory {run_dir} "
                       f"(to {real}); nothing was written there")
    return str(path)


def check_tree(run_dir: Path, shallow: tuple[str, ...] = ()) -> None:
    """RunError naming the first symbolic link, or hard-linked file, inside the run dir.
    `shallow`: top-level folders checked themselves but not walked (nothing writes in them
    while a run trains, and they may hold many files)."""
    for folder, dirs, files in os.walk(run_dir, followlinks=False):
        names = sorted(dirs) + sorted(files)
        if Path(folder) == Path(run_dir):
            dirs[:] = [name for name in dirs if name not in shallow]  # not walked, but checked
        for name in names:
            path = Path(folder, name)
            try:
                info = path.lstat()
            except FileNotFoundError:
                # Gone since it was listed: the state writer's thread renames and prunes
                # while a run trains. What no longer exists leads nowhere.
                continue
            if stat.S_ISLNK(info.st_mode):
                raise RunError(
                    f"{path} is a symbolic link (to {os.readlink(path)}); cbrun never writes "
                    f"through links in a run directory: replace it with the real file or "
                    f"folder, or remove it")
            if stat.S_ISREG(info.st_mode) and info.st_nlink > 1:
                raise RunError(
                    f"{path} is a hard link (the same file has {info.st_nlink} names); "
                    f"writing to it would change the other names too: replace it with a copy")


def open_new(path: Path, flags: int = os.O_WRONLY | os.O_CREAT | os.O_TRUNC) -> int:
    """os.open that refuses to follow a link at the last step of the name."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        if os.path.islink(path):
            raise RunError(f"{path} is a symbolic link; cbrun never writes through links in a "
                           f"run directory: remove it") from None
        raise RunError(f"cannot write {path}: {exc.strerror or exc}") from None
