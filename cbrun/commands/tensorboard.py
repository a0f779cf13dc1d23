"""`cbrun tensorboard [RUNS...]`: one TensorBoard over many runs, each named by its run id."""

from __future__ import annotations

import os
from pathlib import Path

import click

from cbrun.errors import UsageError
from cbrun.run.runinfo import find_runs

EVENTS = "events.out.tfevents.*"


def event_folder(run_dir: Path) -> Path | None:
    """The folder holding all of a run's TensorBoard events (its TensorBoard callback's
    log_dir: train/ and validation/ are in it), None when the run wrote none."""
    folders = {p.parent for p in run_dir.rglob(EVENTS) if p.is_file()}
    if not folders:
        return None
    return Path(os.path.commonpath([str(f) for f in folders]))


def logdir_spec(runs: list[tuple[str, Path]]) -> str:
    """TensorBoard's `name:path,name:path`; its names show as `<id>/train`, `<id>/validation`.
    A run id never holds ',' or ':' (cbrun makes them); a path could, and would be misread."""
    for _, path in runs:
        if "," in str(path):
            raise UsageError(f"{path}: TensorBoard's --logdir_spec cannot take a path with "
                             "a ','; move or link the run elsewhere")
    return ",".join(f"{name}:{path}" for name, path in runs)


def collect(paths: tuple[Path, ...], runs_dir: Path) -> tuple[list[tuple[str, Path]], list[str]]:
    """(run id, event folder) of each run that has events, and the ids of those without."""
    roots = list(paths) or [runs_dir]
    found: dict[str, Path] = {}
    skipped: list[str] = []
    for root in roots:
        if not root.is_dir():
            raise UsageError(f"no such run directory: {root}")
        run_dirs = find_runs(root)
        if not run_dirs:
            raise UsageError(f"{root} holds no runs (a run directory has a run.json or a "
                             "log.csv)")
        for run_dir in run_dirs:
            name = run_dir.name
            folder = event_folder(run_dir)
            if folder is None:
                skipped.append(name)
            elif name in found and found[name] != folder.resolve():
                raise UsageError(f"two runs are named {name}: {found[name]} and {folder}; "
                                 "give one of them")
            else:
                found[name] = folder.resolve()
    return sorted(found.items()), skipped


@click.command("tensorboard")
@click.argument("paths", metavar="[RUNS]...", nargs=-1,
                type=click.Path(path_type=Path, file_okay=False))
@click.option("--runs-dir", type=click.Path(path_type=Path, file_okay=False),
              default=Path("runs"), show_default=True,
              help="Where to look for runs when none are given.")
@click.option("--host", default="localhost", show_default=True,
              help="Address to serve on (0.0.0.0 for every interface).")
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="Port to serve on; 0 lets the system pick one. Default: 6006, or the "
                   "next free port after it.")
def tensorboard(paths: tuple[Path, ...], runs_dir: Path, host: str, port: int | None) -> int:
    """Start TensorBoard over RUNS (run directories, or folders of runs; default: every run
    in runs/), each shown under its run id. Runs that wrote no TensorBoard events (no
    TensorBoard callback) are skipped with a note. Ctrl-C stops it.

    \b
      cbrun tensorboard
      cbrun tensorboard runs/20261121-153012-digits-mlp runs/20261122-091500-digits-cnn
    """
    runs, skipped = collect(paths, runs_dir)
    if skipped:
        click.echo(f"note: no TensorBoard events in {', '.join(skipped)} (their configs have "
                   "no TensorBoard callback); left out", err=True)
    if not runs:
        raise UsageError("none of these runs wrote TensorBoard events; add "
                         "`- {type: TensorBoard, log_dir: tensorboard}` to a config's callbacks")
    for name, folder in runs:
        click.echo(f"{name}  {folder}", err=True)
    # TensorBoard imports TensorFlow when it is installed; its C++ start-up lines are noise.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tensorboard import program

    board = program.TensorBoard()
    board.configure(argv=[None, "--logdir_spec", logdir_spec(runs), "--host", host,
                          "--port", "default" if port is None else str(port)])
    return board.main()
