"""`cbrun train CONFIG`: validate, create the run directory, train."""

from __future__ import annotations

from pathlib import Path

import click

from cbrun.commands.common import console_for, fill_positions
from cbrun.config.load import load_config
from cbrun.errors import ConfigError
from cbrun.rundir import RunRecord, create_run_dir, write_config_files


@click.command()
@click.argument("config_path", metavar="CONFIG", type=click.Path(path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config value, e.g. --set fit.epochs=3 or "
                   "--set callbacks.EarlyStopping.patience=2 (repeatable).")
@click.option("--runs-dir", type=click.Path(path_type=Path), default=Path("runs"),
              show_default=True, help="Where run directories are created.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the run directory.")
def train(config_path: Path, overrides: tuple[str, ...], runs_dir: Path, quiet: bool) -> int:
    """Train the model that CONFIG declares; everything lands in runs/<id>/."""
    # Validation runs before TensorFlow is imported: a typo costs milliseconds, not an epoch.
    loaded = load_config(config_path, overrides)
    config = loaded.config
    console = console_for(quiet)

    run_dir = create_run_dir(runs_dir, config.name)
    write_config_files(run_dir, config_path.read_bytes(),
                       config.model_dump(mode="json", by_alias=True))
    from cbrun.cli import invoked_command
    from cbrun.config.monitors import primary_monitor

    record = RunRecord.new(run_dir, config.name, config.seed, config.fit.epochs,
                           primary_monitor(config), invoked_command())
    record.data["config_dir"] = str(loaded.config_dir.resolve())
    record.data["overrides"] = list(overrides)
    record.save()
    console.print(f"run directory: [bold]{run_dir}[/bold]", highlight=False)

    from cbrun.train.tfimport import import_tensorflow

    import_tensorflow(debug=click.get_current_context().find_root().obj.get("debug", False))
    from cbrun.train.runner import execute  # the ~4 s TensorFlow import starts here

    try:
        code = execute(config, run_dir, loaded.config_dir, record, kind="train",
                       console=console, live=console.is_terminal and not quiet, fresh_dir=True)
    except ConfigError as exc:
        raise fill_positions(exc, loaded.positions) from None
    if quiet:
        click.echo(str(run_dir))
    return code

