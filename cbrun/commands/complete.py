"""Shell completion through click's own mechanism (`_CBRUN_COMPLETE=bash_source cbrun`).

The shell calls cbrun at every Tab, so completing must stay on the lower floor: listing
folders and reading the callback registry, never importing TensorFlow.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import click
from click.shell_completion import CompletionItem

from cbrun.run.rundir import RUN_FILE

RUNS_DIR = "runs"  # where `cbrun train` writes runs by default


def _entries(folder: str, prefix: str) -> Iterator[tuple[str, Path]]:
    """(text to complete to, path) of the folders in `folder` whose names start with
    `prefix`; hidden ones only when the prefix asks for them."""
    try:
        names = sorted(os.listdir(folder or "."))
    except OSError:
        return
    for name in names:
        if not name.startswith(prefix) or (name.startswith(".") and not prefix.startswith(".")):
            continue
        text = os.path.join(folder, name) if folder else name
        yield text, Path(text)


def _is_run(path: Path) -> bool:
    return (path / RUN_FILE).is_file()


def _holds_runs(path: Path, depth: int = 2) -> bool:
    """Whether runs lie in `path` or one folder further (runs/<sweep>/<trial>)."""
    try:
        folders = [child for child in path.iterdir() if child.is_dir()]
    except OSError:
        return False
    return any(_is_run(child) or (depth > 1 and _holds_runs(child, depth - 1))
               for child in folders)


def _candidates(folder: str, prefix: str, files: tuple[str, ...]) -> list[str]:
    found = []
    for text, path in _entries(folder, prefix):
        if path.is_dir():
            if _is_run(path):
                found.append(text)
            elif _holds_runs(path):
                found.append(text + os.sep)
        elif files and text.endswith(files):
            found.append(text)
    return found


def run_dir_candidates(incomplete: str, files: tuple[str, ...] = ()) -> list[str]:
    """Run directories (folders holding run.json) the typed text can become, in the typed
    folder; before a '/' is typed, the runs in runs/ too, in place of runs/ itself. Folders
    that hold runs (a sweep's) end in '/' to go on from; `files` are file suffixes also
    offered (plot takes a log.csv)."""
    folder, prefix = os.path.split(incomplete)
    found = _candidates(folder, prefix, files)
    if not folder and os.path.isdir(RUNS_DIR):
        found = [text for text in found if text != RUNS_DIR + os.sep]
        found += [text for text in _candidates(RUNS_DIR, "", files)
                  if text.startswith(incomplete)]
    return list(dict.fromkeys(found))


def complete_run_dirs(ctx: click.Context, param: click.Parameter,
                      incomplete: str) -> list[CompletionItem]:
    return [CompletionItem(text) for text in run_dir_candidates(incomplete)]


def complete_logs(ctx: click.Context, param: click.Parameter,
                  incomplete: str) -> list[CompletionItem]:
    """`cbrun plot`: run directories, and .csv files (log.csv inside a typed run)."""
    return [CompletionItem(text) for text in run_dir_candidates(incomplete, files=(".csv",))]


def complete_callback_names(ctx: click.Context, param: click.Parameter,
                            incomplete: str) -> list[CompletionItem]:
    from cbrun.callbacks.registry import SPECS

    lowered = incomplete.lower()
    return [CompletionItem(name) for name in SPECS if name.lower().startswith(lowered)]
