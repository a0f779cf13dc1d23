"""`cbrun resume RUN_DIR`: continue a run exactly where it stopped.

The command only wires the two halves of resume together: cbrun/run/resumable.py decides (before
TensorFlow loads) whether the run may continue and with which changes; cbrun/state/
puts the saved state back and rewinds the files written past it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from cbrun.commands.common import console_for, fill_positions
from cbrun.commands.complete import complete_run_dirs
from cbrun.errors import CbrunError, ConfigError
from cbrun.run.handle import OpenRun
from cbrun.run.record import RunRecord
from cbrun.run.resumable import check_resumable, plan_resume
from cbrun.run.rundir import RUN_FILE, run_lock, write_config_files
from cbrun.run.segment import interrupts_recorded, run_segment
from cbrun.state.files import state_dirs


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False),
                shell_complete=complete_run_dirs)
@click.option("--epochs", type=click.IntRange(min=1),
              help="New total number of epochs (extends a completed run).")
@click.option("--continue-after-early-stop", "past_early_stop", is_flag=True,
              help="Train on although EarlyStopping ended the run.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Change a config value for the rest of the run (not the model, the "
                   "optimizer type or the list of callbacks).")
@click.option("-q", "--quiet", is_flag=True, help="Print only the run directory.")
@click.option("--processes", type=click.IntRange(min=1), metavar="N",
              help="Resume in N processes (distribute: data_parallel), as `cbrun train "
                   "--processes` (docs/processes.md).")
@click.option("--coordinator", metavar="HOST:PORT",
              help="Process 0's address, where the processes of the job meet.")
@click.option("--process-id", "process_id", type=click.IntRange(min=0), metavar="I",
              help="This process's id in the job, 0 to N-1 (0 writes the run).")
@click.pass_context
def resume(ctx: click.Context, run_dir: Path, epochs: int | None, past_early_stop: bool,
           overrides: tuple[str, ...], quiet: bool, processes: int | None,
           coordinator: str | None, process_id: int | None) -> int:
    """Continue RUN_DIR from its newest saved state: same data order, same random draws,
    same callback state, so it ends where an uninterrupted run would have."""
    root = ctx.find_root().obj
    return resume_run(run_dir, epochs, past_early_stop, overrides, quiet=quiet,
                      argv=root["argv"], debug=root.get("debug", False),
                      job={"processes": processes, "coordinator": coordinator,
                           "process_id": process_id})


def resume_run(run_dir: Path, epochs: int | None, past_early_stop: bool,
               overrides: Sequence[str], *, quiet: bool, argv: list[str],
               debug: bool = False, job: dict | None = None, peers: Any = None) -> int:
    """The whole of `cbrun resume` (the command and `cbrun.resume` both call it). `job`:
    the --processes, --coordinator and --process-id flags; `peers`: the job, joined
    already (--resume-if-exists)."""
    overrides = tuple(overrides)
    if not (run_dir / RUN_FILE).is_file():
        RunRecord.load(run_dir)  # raises the "not a run directory" error
    if peers is None and job is not None:
        from cbrun.commands import job as several

        # Read, not changed: which processes resume it follows from its config. A run that
        # cannot be planned is left to the resume below, which says why as it always has
        # (under its lock, with its checks of the run directory first).
        try:
            config = plan_resume(RunRecord.load(run_dir), epochs, overrides).config
        except CbrunError:
            config = None
        code = None if config is None else several.run_as_job(
            config, argv, job, debug, lambda peers: resume_run(
                run_dir, epochs, past_early_stop, overrides, quiet=quiet, argv=argv,
                debug=debug, peers=peers))
        if code is not None:
            return code
    # A Ctrl-C from here on stops the resume at its first safe point, recorded in run.json.
    with interrupts_recorded(), run_lock(run_dir):  # a second resume of this run stops here
        # Read only under the lock: a process finishing a moment ago has written its last.
        record = RunRecord.load(run_dir)
        return _resume(record, epochs, past_early_stop, overrides, quiet, argv, debug, peers)


def _resume(record: RunRecord, epochs: int | None, past_early_stop: bool,
            overrides: tuple[str, ...], quiet: bool, argv: list[str], debug: bool,
            peers: Any = None) -> int:
    run_dir = record.run_dir
    check_resumable(record, epochs, past_early_stop)
    done = record.epochs_done
    plan = plan_resume(record, epochs, overrides)  # refuses before writing
    config = plan.config
    for path, was, now in plan.changes:
        # stderr, even with --quiet: a changed run must never change silently.
        click.echo(f"{path}: {was!r} -> {now!r}", err=True)

    console = console_for(quiet)

    def start():
        from cbrun.engine.distribute import split_cpu_first
        from cbrun.engine.session import train as train_session
        from cbrun.state.files import latest_state
        from cbrun.state.rewind import continue_after_early_stop, rewind

        split_cpu_first(config)

        saved = latest_state(run_dir, warn=lambda text: click.echo(text, err=True))
        first = saved.epochs_done if saved else 0
        specs = config.tracked_callbacks()
        if saved is None:
            what = "no valid saved state" if state_dirs(run_dir) else "no saved state"
            click.echo(f"{what}: the run starts again from epoch 1", err=True)
        elif past_early_stop:
            continue_after_early_stop(saved, specs)
        dropped = rewind(run_dir, specs, saved)
        record.resume_from(first, config.fit.epochs, saved.meta.get("best") if saved else None)

        def keep_changes() -> None:  # once the state is back in place: the resume is on
            if plan.changes:
                write_config_files(run_dir, (run_dir / "config.yaml").read_bytes(),
                                   config.model_dump(mode="json", by_alias=True),
                                   record.file.config_files)
                record.add_overrides(list(overrides))

        if peers is not None:
            from cbrun.commands.job import tell_job

            tell_job(peers, kind="resume", run_dir=run_dir, config=config,
                     config_dir=OpenRun(run_dir, record, config).config_dir,
                     positions=plan.loaded.positions, state=saved.path if saved else None,
                     learning_rate=plan.learning_rate,
                     first_epoch=first + 1)
        console.print(f"resuming [bold]{run_dir}[/bold] after epoch {first}"
                      + (f" (dropped {dropped} rows/events written after it)" if dropped
                         else ""), highlight=False)
        return train_session(OpenRun(run_dir, record, config), console=console,
                             live=console.is_terminal and not quiet, restore=saved,
                             learning_rate=plan.learning_rate, on_restored=keep_changes)

    try:
        code = run_segment(record, kind="resume", first_epoch=done + 1, command=argv,
                           console=console, debug=debug, fresh_dir=False,
                           train=start, backend=config.backend, tracking=config.tracking)
    except ConfigError as exc:
        raise fill_positions(exc, plan.loaded.positions) from None
    if quiet:
        click.echo(str(run_dir))
    return code
