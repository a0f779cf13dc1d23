"""`cbrun plot`: draw the curves of one run, or compare several, from their log.csv.

matplotlib and plotext are imported inside the command, only for the output asked for.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import click

from cbrun.commands.complete import complete_logs
from cbrun.errors import UsageError
from cbrun.plotting.inputs import (
    COMPARE_NAME,
    IMAGE_SUFFIX,
    PlotRun,
    all_families,
    is_live,
    load_runs,
    parse_metrics,
    select_families,
)
from cbrun.plotting.watch import any_running
from cbrun.plotting.watch import watch as watch_loop
from cbrun.run.logs import LogError, resolve_log_path
from cbrun.run.rundir import LOG_FILE
from cbrun.run.runinfo import read_run_info


@click.command("plot")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path),
                shell_complete=complete_logs)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Image to write; the suffix picks the format: .png, .svg, .pdf or .jpg. "
                   "Defaults to a PNG beside the CSV (compare.png beside the runs "
                   "for several).")
@click.option("-m", "--metrics", multiple=True, metavar="NAMES",
              help="Metric families to draw, comma-separated or repeated: loss, accuracy, "
                   "learning_rate, ... (val_ twins come along). Defaults to all.")
@click.option("-t", "--terminal", is_flag=True,
              help="Draw in the terminal instead of writing a file (for ssh sessions).")
@click.option("-w", "--watch", is_flag=True,
              help="Redraw as the run appends rows, until it stops running (or Ctrl-C).")
@click.option("--interval", type=click.FloatRange(min=0.05), default=2.0, show_default=True,
              help="Seconds between checks for new rows with --watch.")
@click.option("--width", type=click.IntRange(min=40), default=None,
              help="Columns of the terminal drawing. Defaults to the terminal's width.")
@click.option("--height", type=click.IntRange(min=12), default=None,
              help="Rows of the terminal drawing. Defaults to the terminal's height.")
# For tests and scripts: stop --watch after this many checks even if the run goes on.
@click.option("--max-refreshes", type=click.IntRange(min=1), default=None, hidden=True)
def plot(
    paths: tuple[Path, ...],
    output: Path | None,
    metrics: tuple[str, ...],
    terminal: bool,
    watch: bool,
    interval: float,
    width: int | None,
    height: int | None,
    max_refreshes: int | None,
) -> None:
    """Plot the log.csv of a run (a run directory works too).

    One panel per metric family: loss with val_loss, each metric with its val_ twin, the
    learning rate on a log scale. The best epoch of the monitored metric, the epoch where
    early stopping ended the run and the epochs where it was resumed are marked. Several
    runs draw one comparison, each named by its id; among several, files that are no CSV
    log (images, archives, the compare.png of an earlier call) are skipped.

    Exit status: 0 when drawn; 2 for bad input (a missing path, a file that is no CSV, a
    log with no rows or no numeric column) or a bad option; 1 when the image cannot be
    written.

    \b
      cbrun plot runs/20261121-153012-digits-mlp
      cbrun plot runs/A runs/B -o compare.svg --metrics loss,accuracy
      cbrun plot runs/A --terminal --watch
    """
    if output is not None and terminal:
        raise UsageError("-o writes an image file and --terminal draws in the terminal: "
                         "choose one")
    wanted = parse_metrics(metrics)
    if output is not None:
        from cbrun.plotting.figure import check_output

        check_output(output)  # before reading anything: a typo in -o costs nothing

    if watch and not any_running(paths):
        # Nothing will append rows: say so instead of "watching", and draw once.
        click.echo(_finished_note(paths), err=True)
        watch = False

    if terminal:
        size = shutil.get_terminal_size(fallback=(100, 40))
        draw = _terminal_drawer(wanted, width or size.columns, height or size.lines, watch)
    else:
        draw = _file_drawer(wanted, output or default_output(paths), watch)

    if not watch:
        draw(load_runs(paths, _warn))
        return

    watch_loop(
        paths,
        draw=draw,
        waiting=lambda message: click.echo(message, err=True),
        interval=interval,
        max_refreshes=max_refreshes,
        warn=_warn,
    )


def default_output(paths: tuple[Path, ...]) -> Path:
    """log.png beside a single log.csv; compare.png in the folder holding several runs,
    or in the current folder when they share none below the filesystem's root."""
    csvs = [_csv_or_guess(p) for p in paths]
    if len(csvs) == 1:
        return csvs[0].with_suffix(IMAGE_SUFFIX)
    folder = shared_folder([c.parent.resolve() for c in csvs])
    if folder is None:
        click.echo(f"note: the runs share no folder; writing {COMPARE_NAME} in the current "
                   f"folder ({Path.cwd()})", err=True)
        return Path(COMPARE_NAME)
    relative = os.path.relpath(folder)
    return Path(folder if relative.startswith("..") else relative) / COMPARE_NAME


def shared_folder(folders: list[Path]) -> Path | None:
    """The deepest folder holding all `folders` (absolute), None when that is only the
    filesystem's root: runs from unrelated places, where "/compare.png" is unwritable or
    unwanted."""
    common = Path(os.path.commonpath([str(f) for f in folders]))
    return None if common == Path(common.anchor) else common


def _csv_or_guess(path: Path) -> Path:
    # A watched run may have no log.csv yet; its image still goes where the log will be.
    try:
        return resolve_log_path(path)
    except (UsageError, LogError):
        if path.is_dir():
            return path / LOG_FILE
        raise


def _warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


def _families(runs: list[PlotRun], wanted: list[str]):
    families = select_families(all_families(runs), wanted)
    if not families:
        raise UsageError("nothing to draw: the logs have no numeric column")
    return families


def _file_drawer(wanted: list[str], output: Path, watch: bool):
    from cbrun.plotting.figure import build_figure, save_figure

    def draw(runs: list[PlotRun]) -> None:
        fig = build_figure(runs, _families(runs, wanted))
        written = save_figure(fig, output)
        epochs = max(len(run.log) for run in runs)
        stamp = f" ({time.strftime('%H:%M:%S')}, {epochs} epochs)" if watch else ""
        click.echo(f"wrote {written}{stamp}")

    return draw


def _terminal_drawer(wanted: list[str], width: int, height: int, watch: bool):
    from cbrun.plotting.terminal import render

    color = _use_color()
    clear = watch and sys.stdout.isatty()

    def draw(runs: list[PlotRun]) -> None:
        # A line is left for the shell prompt, or for the watch footer.
        text = render(runs, _families(runs, wanted), width=width, height=height - 1,
                      color=color)
        if clear:
            # Home and erase: the new frame replaces the old one instead of scrolling.
            click.echo("\x1b[H\x1b[2J", nl=False)
        click.echo(text, nl=False, color=color)
        if watch:
            click.echo(f"updated {time.strftime('%H:%M:%S')}; {_watch_state(runs)}")

    return draw


def _finished_note(paths: tuple[Path, ...]) -> str:
    if len(paths) > 1:
        return "the runs have finished: drawing them once, not watching"
    folder = paths[0] if paths[0].is_dir() else paths[0].parent
    status = read_run_info(folder).shown_status.replace("_", " ")
    return f"{paths[0]} has finished ({status}): drawing it once, not watching"


def _watch_state(runs: list[PlotRun]) -> str:
    if any(is_live(run) for run in runs):
        return "watching, Ctrl-C to stop"
    return "the run has finished" if len(runs) == 1 else "the runs have finished"


def _use_color() -> bool:
    # https://no-color.org: any non-empty NO_COLOR turns colors off.
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")
