"""`cbrun resume RUN_DIR`: continue a run exactly where it stopped."""

from __future__ import annotations

from pathlib import Path

import click

from cbrun.commands.common import console_for, fill_positions
from cbrun.config.load import load_config
from cbrun.errors import ConfigError, UsageError
from cbrun.resume import check_resumable, override_changes, truncate_csv
from cbrun.rundir import RunRecord, write_config_files


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--epochs", type=click.IntRange(min=1),
              help="New total number of epochs (extends a completed run).")
@click.option("--continue-after-early-stop", "past_early_stop", is_flag=True,
              help="Train on although EarlyStopping ended the run.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Change a config value for the rest of the run (not the model).")
@click.option("-q", "--quiet", is_flag=True, help="Print only the run directory.")
def resume(run_dir: Path, epochs: int | None, past_early_stop: bool,
           overrides: tuple[str, ...], quiet: bool) -> int:
    """Continue RUN_DIR from its newest saved state: same data order, same random draws,
    same callback state, so it ends where an uninterrupted run would have."""
    record = RunRecord.load(run_dir)
    check_resumable(record, epochs, past_early_stop)

    resolved = run_dir / "resolved.yaml"
    before = load_config(resolved)
    loaded = load_config(resolved, overrides=list(overrides)) if overrides else before
    config = loaded.config
    changes = override_changes(before.config.model_dump(mode="json", by_alias=True),
                               config.model_dump(mode="json", by_alias=True))
    if epochs is not None:
        if epochs <= record.data.get("epochs_done", 0):
            raise UsageError(f"--epochs {epochs} is not past the {record.data['epochs_done']} "
                             "epochs already done")
        changes.append(("fit.epochs", config.fit.epochs, epochs))
        config.fit.epochs = epochs
    console = console_for(quiet)
    for path, old, new in changes:
        # stderr, even with --quiet: a changed run must never change silently.
        click.echo(f"{path}: {old!r} -> {new!r}", err=True)

    from cbrun.train.tfimport import import_tensorflow

    import_tensorflow(debug=click.get_current_context().find_root().obj.get("debug", False))
    from cbrun.train.runner import execute  # TensorFlow is imported from here on
    from cbrun.train.state import latest_state

    saved = latest_state(run_dir)
    done = saved.epochs_done if saved else 0
    if saved is not None and past_early_stop:
        _forget_early_stop(saved.meta)
    dropped = _rewind_files(run_dir, config, saved, done)
    record.data.update(epochs_planned=config.fit.epochs, epochs_done=done,
                       best=saved.meta.get("best") if saved else None, stopped_early_at=None)
    if changes:
        write_config_files(run_dir, (run_dir / "config.yaml").read_bytes(),
                           config.model_dump(mode="json", by_alias=True))
        record.data.setdefault("overrides", []).extend(overrides)
    console.print(f"resuming [bold]{run_dir}[/bold] after epoch {done}"
                  + (f" (dropped {dropped} rows/events written after it)" if dropped else ""),
                  highlight=False)
    config_dir = Path(record.data.get("config_dir") or run_dir)
    try:
        code = execute(config, run_dir, config_dir, record, kind="resume", console=console,
                       live=console.is_terminal and not quiet, restore=saved)
    except ConfigError as exc:
        raise fill_positions(exc, loaded.positions) from None
    if quiet:
        click.echo(str(run_dir))
    return code


def _forget_early_stop(meta: dict) -> None:
    meta["stop_training"] = False
    for entry in meta["callbacks"]:
        if entry and entry["class"] == "EarlyStopping":
            entry["state"].update(stopped_epoch=0, wait=0)


def _rewind_files(run_dir: Path, config, saved, done: int) -> int:
    """Drop what was written after the saved state: CSV rows and TensorBoard events."""
    from cbrun.train.tbtrim import trim_event_files

    dropped = truncate_csv(run_dir / "log.csv", done)
    for index, spec in enumerate(config.callbacks):
        if spec.type == "CSVLogger" and (run_dir / spec.filename).resolve() != (
                run_dir / "log.csv").resolve():
            dropped += truncate_csv(run_dir / spec.filename, done)
        if spec.type == "TensorBoard" and (run_dir / spec.log_dir).is_dir():
            batches = None
            if saved is not None:
                entry = saved.meta["callbacks"][index]
                batches = entry["state"].get("_global_train_batch") if entry else None
            iterations = saved.meta.get("optimizer_iterations", 0) if saved else 0
            dropped += trim_event_files(run_dir / spec.log_dir, done, batches, iterations)
    return dropped
