"""`cbrun plot --watch`: redraw whenever a training appends to its log.

The loop polls file sizes and times (cheap, and works on every filesystem, NFS included)
and redraws only when something changed. It ends by itself once every run it shows has a
run.json saying it is no longer running (after one last drawing of the final state), after
`max_refreshes` polls, or at Ctrl-C.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from cbrun.errors import UsageError
from cbrun.plotting.inputs import PlotRun, Warn, load_runs
from cbrun.run.logs import LogError, NoRowsError, resolve_log_path
from cbrun.run.rundir import LOG_FILE, RUN_FILE
from cbrun.run.runinfo import read_run_info


def watch(
    paths: Sequence[Path],
    draw: Callable[[list[PlotRun]], None],
    waiting: Callable[[str], None],
    interval: float = 2.0,
    max_refreshes: int | None = None,
    warn: Warn = lambda message: None,
) -> int:
    """Poll `paths` and call `draw` with fresh runs when their files change; `waiting`
    gets a message while there is nothing to draw yet. Returns the number of drawings."""
    for path in map(Path, paths):
        # A typo must not wait forever; a run that has not logged an epoch yet may.
        if not (path.is_dir() and (path / RUN_FILE).exists()):
            resolve_log_path(path)
    said: set[str] = set()

    def warn_once(message: str) -> None:
        # The same note at every redraw would bury the drawing.
        if message not in said:
            said.add(message)
            warn(message)

    def wait_once(message: str) -> None:
        # run.json changes at every epoch's end too; the wait is said once, not each time.
        if message not in said:
            said.add(message)
            waiting(message)

    last = None
    problem: Exception | None = None
    drawings = polls = 0
    try:
        while True:
            # Read before the files: a run seen finished here was finished before they
            # were read, so the last drawing shows its final rows.
            running = any_running(paths)
            state = _signature(paths)
            if state != last:
                last = state
                try:
                    runs = load_runs(paths, warn_once)
                except NoRowsError as exc:
                    # The usual start of a watch: the training has not finished epoch 1.
                    problem = exc
                    wait_once(f"{_names(paths)}: waiting for the first epoch")
                except (LogError, UsageError) as exc:
                    problem = exc
                    wait_once(f"waiting for rows: {exc}")
                else:
                    problem = None
                    draw(runs)
                    drawings += 1
            polls += 1
            if not running or (max_refreshes and polls >= max_refreshes):
                break
            pause(interval)
    except KeyboardInterrupt:
        # Ctrl-C is how a user leaves a watch: not an error.
        return drawings
    if problem is not None and not running:
        raise problem  # the run ended with nothing to draw: say so like a plain plot would
    return drawings


def pause(seconds: float) -> None:
    """The wait between polls; a test replaces it to step a fake training instead."""
    time.sleep(seconds)


def _files(path: Path) -> tuple[Path, Path]:
    folder = path if path.is_dir() else path.parent
    csv = path / LOG_FILE if path.is_dir() else path
    return csv, folder / RUN_FILE


def _signature(paths: Sequence[Path]) -> tuple:
    stamps = []
    for path in paths:
        for file in _files(Path(path)):
            try:
                stat = file.stat()
                stamps.append((stat.st_mtime_ns, stat.st_size))
            except OSError:
                stamps.append(None)
    return tuple(stamps)


def _names(paths: Sequence[Path]) -> str:
    return ", ".join(str(path) for path in paths)


def any_running(paths: Sequence[Path]) -> bool:
    """True while a run may still append rows (`RunInfo.may_grow`): a foreign CSV, with no
    run.json beside it, is watched until Ctrl-C."""
    return any(read_run_info(_files(Path(path))[1].parent).may_grow for path in paths)
