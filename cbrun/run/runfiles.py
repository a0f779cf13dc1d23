"""What a run directory holds that cbrun or the run's callbacks wrote (lower floor):
`cbrun evaluate`, `predict` and `export` never write over these with `-o`, and the model
files among them are the run's own (loaded as the run wrote them, cbrun/run/checkpoints.py).

A callback's paths are templates (`checkpoints/ep{epoch:03d}.keras`): each placeholder
stands for any text.
"""

from __future__ import annotations

import fnmatch
import os
import re
from pathlib import Path
from typing import Any

from cbrun.callbacks.base import RESERVED_RUN_PATHS, run_relative
from cbrun.run.rundir import LOCK_FILE, LOG_FILE, RUN_FILE

MODEL_FILE = "model.keras"
RESOLVED = "resolved.yaml"
# cbrun's own, whatever the config says (log.csv: its own writer's, when no CSVLogger's).
CBRUN_PATHS = (*RESERVED_RUN_PATHS, LOG_FILE, LOCK_FILE)


def _pattern(template: str) -> str:
    """A callback's path template as an fnmatch pattern, its literal brackets kept."""
    parts = re.split(r"(\{[^}]*\})", str(run_relative(template)))
    return "".join("*" if p.startswith("{") else re.sub(r"([\[\]*?])", r"[\1]", p)
                   for p in parts)


def callback_patterns(config: Any) -> list[tuple[str, str]]:
    """(pattern, callback type) of every path the run's callbacks write."""
    found = []
    for spec in config.tracked_callbacks():
        for name in spec.path_fields:
            value = getattr(spec, name, None)
            if value:
                found.append((_pattern(value), spec.type))
    return found


def checkpoint_files(run_dir: Path, config: Any) -> list[Path]:
    """The model files in the run: model.keras, then what its ModelCheckpoints wrote."""
    found = [run_dir / MODEL_FILE] if (run_dir / MODEL_FILE).is_file() else []
    for pattern, kind in callback_patterns(config):
        if kind == "ModelCheckpoint":
            found += sorted(p for p in run_dir.glob(pattern) if p.is_file() and p not in found)
    return found


def is_own_model_file(run_dir: Path, config: Any, path: Path) -> bool:
    """Whether `path` is a model file this run wrote: its model.keras or a file its
    ModelCheckpoint's template names, reached without leaving the run through a link."""
    real, root = Path(os.path.realpath(path)), Path(os.path.realpath(run_dir))
    if root not in real.parents:
        return False
    rel = real.relative_to(root).as_posix()
    return rel == MODEL_FILE or any(
        kind == "ModelCheckpoint" and fnmatch.fnmatchcase(rel, pattern)
        for pattern, kind in callback_patterns(config))


def run_directory_of(path: Path) -> Path | None:
    """The run directory `path` lies in (a folder holding the run.json and resolved.yaml
    that `cbrun train` writes first), or None."""
    for folder in Path(os.path.realpath(path)).parents:
        if (folder / RUN_FILE).is_file() and (folder / RESOLVED).is_file():
            return folder
    return None


def owner(path: Path) -> tuple[Path, str] | None:
    """(run directory, what it is there) when `path` is, or lies inside, a file or folder
    that a run's cbrun or callbacks write; None otherwise."""
    run_dir = run_directory_of(path)
    if run_dir is None:
        return None
    parts = Path(os.path.realpath(path)).relative_to(run_dir).parts
    if parts[0] in CBRUN_PATHS:
        return run_dir, f"cbrun's {parts[0]}"
    # the path itself or a folder above it inside the run
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    from cbrun.config.load import load_config
    from cbrun.errors import CbrunError

    try:
        patterns = callback_patterns(load_config(run_dir / RESOLVED, resolved=True).config)
    except (CbrunError, OSError, ValueError):  # unreadable: only cbrun's own names are known
        patterns = []
    for pattern, kind in patterns:
        if any(fnmatch.fnmatchcase(p, pattern) for p in prefixes):
            return run_dir, f"what its {kind} writes ({pattern})"
    return None
