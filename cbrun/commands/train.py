"""`cbrun train CONFIG`: validate, create the run directory, train."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from cbrun.commands.common import console_for, fill_positions
from cbrun.config.load import load_config
from cbrun.config.monitors import primary_monitor
from cbrun.data.fingerprint import fingerprint
from cbrun.errors import ConfigError, UsageError
from cbrun.run.handle import OpenRun
from cbrun.run.record import RunRecord, SweepTrial
from cbrun.run.rundir import create_run_dir, run_lock, write_config_files
from cbrun.run.segment import interrupts_recorded, run_segment


@click.command()
@click.argument("config_path", metavar="CONFIG...", nargs=-1, required=True,
                type=click.Path(path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config value, e.g. --set fit.epochs=3 or "
                   "--set callbacks.EarlyStopping.patience=2 (repeatable).")
@click.option("--runs-dir", type=click.Path(path_type=Path), default=Path("runs"),
              show_default=True, help="Where run directories are created.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the run directory.")
@click.option("--resume-if-exists", "run_id", metavar="ID",
              help="Train in RUNS_DIR/ID (a fixed name instead of a time stamp), or, when "
                   "that run exists, resume it (exit 0 at once when it has ended): the same "
                   "command line trains the first time and continues after a preemption.")
@click.option("--fast-dev-run", is_flag=True,
              help="Run one batch of training, of validation and of the test split through "
                   "the model and every callback, in a temporary folder deleted after: the "
                   "config works end to end, in seconds. Nothing is kept; trackers are off.")
@click.option("--overfit-batches", type=click.IntRange(min=1), metavar="N",
              help="Train, and validate, on the same first N batches every epoch, "
                   "unshuffled: a model that cannot reach a training accuracy of 1.0 on them "
                   "is broken. Sets fit.overfit_batches (kept in the run, resumed as is).")
@click.option("--processes", type=click.IntRange(min=1), metavar="N",
              help="Train in N processes (distribute: data_parallel, backend: jax): alone, "
                   "starts them all on this machine; with --coordinator and --process-id, "
                   "this is one of N processes started elsewhere (docs/processes.md).")
@click.option("--coordinator", metavar="HOST:PORT",
              help="Process 0's address, where the processes of the job meet.")
@click.option("--process-id", "process_id", type=click.IntRange(min=0), metavar="I",
              help="This process's id in the job, 0 to N-1 (0 writes the run).")
# `cbrun sweep` starts each trial with its study, trial number and metric (JSON); run.json
# keeps it, so a resumed trial reports to its study too.
@click.option("--sweep-trial", "sweep_trial", hidden=True, default=None)
@click.pass_context
def train(ctx: click.Context, config_path: tuple[Path, ...], overrides: tuple[str, ...],
          runs_dir: Path, quiet: bool, run_id: str | None, fast_dev_run: bool,
          overfit_batches: int | None, processes: int | None, coordinator: str | None,
          process_id: int | None, sweep_trial: str | None) -> int:
    """Train the model that CONFIG declares; everything lands in runs/<id>/. Several
    CONFIG files merge in order, the later winning (as `extends:` in a file does)."""
    config_path = list(config_path)
    root = ctx.find_root().obj
    debug = root.get("debug", False)
    job = {"processes": processes, "coordinator": coordinator, "process_id": process_id}
    if overfit_batches:
        overrides = (*overrides, f"fit.overfit_batches={overfit_batches}")
    if fast_dev_run:
        if run_id is not None:
            raise UsageError("--fast-dev-run keeps nothing, so there is no run for "
                             "--resume-if-exists to find again; use one or the other")
        if any(value is not None for value in job.values()):
            raise UsageError("--fast-dev-run runs in this one process; leave out "
                             "--processes, --coordinator and --process-id")
        return dev_run(config_path, overrides, quiet=quiet, argv=root["argv"], debug=debug)
    if run_id is not None:
        from cbrun.commands.requeue import train_or_resume

        return train_or_resume(config_path, overrides, runs_dir, run_id, quiet=quiet,
                               argv=root["argv"], debug=debug, train_config=train_config,
                               job=job)
    code, _ = train_config(config_path, overrides, runs_dir, quiet=quiet, argv=root["argv"],
                           debug=debug, sweep_trial=sweep_trial, job=job)
    return code


def train_config(config_path: Path | Sequence[Path], overrides: Sequence[str], runs_dir: Path,
                 *, quiet: bool,
                 argv: list[str], debug: bool = False, sweep_trial: str | None = None,
                 run_dir: Path | None = None, dev_batches: int | None = None,
                 job: dict | None = None, peers: Any = None) -> tuple[int, Path | None]:
    """The whole of `cbrun train` (the command and `cbrun.train` both call it): (exit code,
    run directory). argv: the command run.json records. `run_dir`: an empty folder to
    train in, instead of a new RUNS_DIR/<time>-<name>. `job`: the --processes,
    --coordinator and --process-id flags (docs/processes.md); `peers`: the job, joined
    already (--resume-if-exists)."""
    overrides = tuple(overrides)
    # Validation runs before TensorFlow is imported: a typo costs milliseconds, not an epoch.
    loaded = load_config(config_path, overrides, check_data_files=True)
    made: list[Path] = []
    if peers is None and job is not None:
        from cbrun.commands import job as several

        code = several.run_as_job(loaded.config, argv, job, debug, lambda peers: _train_in(
            loaded, runs_dir, run_dir, overrides, quiet, argv, debug, sweep_trial,
            dev_batches, peers, made))
        if code is not None:
            return code, made[0] if made else None
    return _train_in(loaded, runs_dir, run_dir, overrides, quiet, argv, debug, sweep_trial,
                     dev_batches, peers, made), made[0]


def _train_in(loaded, runs_dir: Path, run_dir: Path | None, overrides: tuple[str, ...],
              quiet: bool, argv: list[str], debug: bool, sweep_trial: str | None,
              dev_batches: int | None, peers: Any, made: list[Path]) -> int:
    # From the moment the run directory exists, a Ctrl-C must leave it marked interrupted:
    # one that comes while it is set up stops the run as soon as run.json exists.
    with interrupts_recorded():
        run_dir = run_dir or create_run_dir(runs_dir, loaded.config.name)
        made.append(run_dir)
        with run_lock(run_dir):
            return _train(loaded, run_dir, overrides, quiet, argv, debug, sweep_trial,
                          dev_batches, peers)


def _train(loaded, run_dir: Path, overrides: tuple[str, ...], quiet: bool,
           argv: list[str], debug: bool, sweep_trial: str | None = None,
           dev_batches: int | None = None, peers: Any = None) -> int:
    config = loaded.config
    console = console_for(quiet)
    write_config_files(run_dir, loaded.text.encode("utf-8"),  # what was validated
                       config.model_dump(mode="json", by_alias=True),
                       [str(f) for f in loaded.files])
    record = RunRecord.new(run_dir, config.name, config.seed, config.fit.epochs,
                           primary_monitor(config), argv,
                           config_dir=loaded.config_dir.resolve(), overrides=list(overrides),
                           config_files=[str(f) for f in loaded.files],
                           sweep=SweepTrial.model_validate_json(sweep_trial)
                           if sweep_trial else None,
                           data_files=fingerprint(config.data, loaded.config_dir, run_dir),
                           backend=config.backend,
                           overfit_batches=config.fit.overfit_batches)
    console.print(f"run directory: [bold]{run_dir}[/bold]", highlight=False)
    if peers is not None:
        from cbrun.commands.job import tell_job

        tell_job(peers, kind="train", run_dir=run_dir, config=config,
                 config_dir=loaded.config_dir.resolve(), positions=loaded.positions)

    def start():
        from cbrun.engine.session import train as train_session

        return train_session(OpenRun(run_dir, record, config, dev_batches), console=console,
                             live=console.is_terminal and not quiet)

    try:
        code = run_segment(record, kind="train", first_epoch=1, command=argv,
                           console=console, debug=debug, fresh_dir=True,
                           train=start, backend=config.backend,
                           summary=dev_batches is None, tracking=config.tracking)
    except ConfigError as exc:
        raise fill_positions(exc, loaded.positions) from None
    if quiet:
        click.echo(str(run_dir))
    return code


# What a fast dev run changes besides cutting every split to one batch: one epoch, no
# steps cap (one batch is all there is), validation at that epoch, nothing sent to a tracker.
DEV_RUN = ("fit.epochs=1", "fit.steps_per_epoch=null", "fit.validation_freq=1",
           "fit.validation_steps=null", "fit.max_time=null", "tracking=null")


def dev_run(config_path: Sequence[Path], overrides: Sequence[str], *, quiet: bool,
            argv: list[str], debug: bool) -> int:
    """`cbrun train --fast-dev-run`: the run in a temporary folder, deleted after."""
    import shutil
    import tempfile

    from cbrun.config.load import load_config

    # The config as the user wrote it is checked first: the dev run's own settings would
    # otherwise replace a wrong fit.epochs or max_time before anything saw it.
    load_config(config_path, tuple(overrides), check_data_files=True)
    folder = Path(tempfile.mkdtemp(prefix="cbrun-fast-dev-run-"))
    try:
        code, _ = train_config(config_path, (*overrides, *DEV_RUN), folder,
                                     quiet=quiet, argv=argv, debug=debug, dev_batches=1)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if code == 0 and not quiet:
        console_for(False).print("fast dev run passed: one batch of every split through the "
                                 "model and every callback; nothing was kept",
                                 highlight=False)
    return code
